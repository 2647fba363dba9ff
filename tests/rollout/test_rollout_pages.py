"""The security admin's rollout and exception pages, and their API."""
from datetime import timedelta

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from core.models import Outcome
from fleet.models import Environment
from rollout import canary
from rollout import exceptions as policy_exceptions
from rollout.models import CanarySetting, KillSwitchChange, Mode, PolicyException
from tests.factories import DecisionFactory, PolicyFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def policy():
    return PolicyFactory(name="budget")


def api_as(user):
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {Token.objects.create(user=user).key}")
    return client


def test_saving_a_rollout_keeps_history_with_who_and_why(client, make_user, policy):
    admin = make_user("security_admin")
    client.force_login(admin)
    url = f"/rollout/{Environment.objects.default().name}/budget/"
    form = {"mode": "dry-run", "enforce_percentage": 10, "enforce_users": "alice\nbob", "enforce_agents": "",
            "dry_run_users": "", "user_field": "user.id", "agent_field": "agent.id"}
    refused = client.post(url, form)
    assert "Say why" in refused.content.decode() and not CanarySetting.objects.exists()

    client.post(url, form | {"reason": "start the canary"})
    client.post(url, form | {"enforce_percentage": 20, "reason": "no complaints"})

    history = client.get(url)
    assert [s.enforce_percentage for s in history.context["history"]] == [20, 10]
    assert "no complaints" in history.content.decode() and admin.username in history.content.decode()
    assert canary.current_rollout(policy, Environment.objects.default()).enforce_users == ("alice", "bob")


def test_only_security_admins_change_rollouts(client, make_user, policy):
    client.force_login(make_user("policy_author"))
    url = f"/rollout/{Environment.objects.default().name}/budget/"
    assert client.get(url).status_code == 200
    assert client.post(url, {"mode": "off", "enforce_percentage": 0, "user_field": "user.id",
                             "agent_field": "agent.id", "reason": "x"}).status_code == 403


def test_preview_counts_the_last_day_with_the_same_buckets_as_opa(client, make_user, policy):
    users = [f"user-{n}" for n in range(200)]
    for n, user in enumerate(users):
        DecisionFactory(policy=policy, input={"user": {"id": user}},
                        outcome=Outcome.DENY if n % 2 else Outcome.ALLOW)
    DecisionFactory(policy=policy, timestamp=timezone.now() - timedelta(days=2))  # outside the window
    client.force_login(make_user("security_admin"))
    response = client.post(f"/rollout/{Environment.objects.default().name}/budget/preview/", {
        "mode": "dry-run", "enforce_percentage": 30, "user_field": "user.id", "agent_field": "agent.id"})
    preview = response.context["preview"]
    expected = [n for n, u in enumerate(users) if canary.user_bucket(u) < 30]
    assert preview.decisions == 200
    assert preview.enforced == len(expected)
    assert preview.enforced_denied == sum(1 for n in expected if n % 2)
    assert response.context["current"].enforced == 200  # today: enforce for everyone


def test_a_preview_replays_only_its_own_environments_decisions(client, make_user, policy):
    """A rollout reaches one environment's OPAs, so staging's traffic must not count toward
    production's preview. The default environment also owns the decisions logged without an
    environment (its OPA_URL's OPA, on the bootstrap token)."""
    production = Environment.objects.create(name="production")
    default = Environment.objects.default()
    for environment, count in (("production", 3), (default.name, 2), ("", 1), ("staging", 4)):
        for _ in range(count):
            DecisionFactory(policy=policy, environment=environment, outcome=Outcome.DENY)
    client.force_login(make_user("security_admin"))
    form = {"mode": "enforce", "enforce_percentage": 100, "user_field": "user.id", "agent_field": "agent.id"}
    response = client.post(f"/rollout/{production.name}/budget/preview/", form)
    assert (response.context["preview"].decisions, response.context["preview"].enforced_denied) == (3, 3)
    assert "<strong>3</strong> decisions in production of the last 24 hours" in response.content.decode()
    assert client.post(f"/rollout/{default.name}/budget/preview/", form).context["preview"].decisions == 3
    empty = client.post("/rollout/" + Environment.objects.create(name="qa").name + "/budget/preview/", form)
    assert "No decisions of this policy in qa in the last 24 hours" in empty.content.decode()


def test_a_busy_day_is_previewed_from_its_newest_decisions(client, make_user, policy, monkeypatch):
    """A preview decodes and buckets each decision in Python: it replays at most PREVIEW_LIMIT, the
    newest, and says of how many (at 10M rows, a day of 265,000 took 9.4 s to preview)."""
    monkeypatch.setattr(canary, "PREVIEW_LIMIT", 3)
    now = timezone.now()
    for minutes, outcome in ((50, Outcome.DENY), (40, Outcome.DENY), (30, Outcome.ALLOW), (20, Outcome.DENY),
                             (10, Outcome.ALLOW)):
        DecisionFactory(policy=policy, outcome=outcome, timestamp=now - timedelta(minutes=minutes))
    client.force_login(make_user("security_admin"))
    response = client.post(f"/rollout/{Environment.objects.default().name}/budget/preview/", {
        "mode": "enforce", "enforce_percentage": 100, "user_field": "user.id", "agent_field": "agent.id"})
    preview, current = response.context["preview"], response.context["current"]
    assert (preview.decisions, preview.total, preview.enforced_denied) == (3, 5, 1)  # the newest three
    assert (current.decisions, current.total) == (3, 5)
    assert "Of the newest <strong>3</strong> of the 5 decisions" in response.content.decode()


def test_the_proposal_and_the_current_rollout_replay_one_read_of_the_decisions(client, make_user, policy):
    for n in range(6):
        DecisionFactory(policy=policy, input={"user": {"id": f"user-{n % 2}"}}, outcome=Outcome.DENY)
    client.force_login(make_user("security_admin"))
    with CaptureQueriesContext(connection) as queries:
        response = client.post(f"/rollout/{Environment.objects.default().name}/budget/preview/",
                               PREVIEW_FORM | {"mode": "enforce", "enforce_users": "user-1"})
    assert response.context["preview"].enforced == 6 and response.context["current"].enforced == 6
    assert len([q for q in queries.captured_queries if '"audit_decision"' in q["sql"]]) == 1


IDS = st.one_of(st.sampled_from(["", "dana", "1", "true"]), st.booleans(), st.integers(-2, 2), st.none(),
                st.dictionaries(st.sampled_from(["a", "b"]), st.integers(0, 2), max_size=2),
                st.lists(st.integers(0, 2), max_size=2))
REQUESTS = st.one_of(st.fixed_dictionaries({}, optional={"user": st.one_of(IDS, st.fixed_dictionaries(
    {}, optional={"id": IDS})), "agent": st.fixed_dictionaries({}, optional={"id": IDS})}), IDS)


@settings(max_examples=200, deadline=None)
@given(requests=st.lists(REQUESTS, max_size=30), percentage=st.integers(0, 100), kill_switch=st.booleans(),
       dry_run=st.lists(st.sampled_from(["dana", "1", "true"]), max_size=2),
       agents=st.lists(st.sampled_from(["1", "bot"]), max_size=2))
@example(requests=[{"user": {"id": 1}}, {"user": {"id": True}}], percentage=30, kill_switch=False, dry_run=[],
         agents=[])  # buckets 19 and 47: enforced and not
def test_a_replay_remembers_each_users_mode_without_changing_it(requests, percentage, kill_switch, dry_run, agents):
    """The preview decides each (user, agent) once: 1 and True are the same key to Python, not to
    OPA's buckets, and an object as the id is decided every time."""
    rollout = canary.Rollout(mode=Mode.DRY_RUN, enforce_percentage=percentage, dry_run_users=tuple(dry_run),
                             enforce_agents=tuple(agents))
    replay = canary.Replay(rollout, kill_switch)
    assert [replay.mode(r if isinstance(r, dict) else {}) for r in requests] == [
        rollout.effective_mode(r, kill_switch) for r in requests]


def test_kill_switch_through_the_page_and_the_api(client, make_user):
    admin = make_user("security_admin")
    environment = Environment.objects.default()
    client.force_login(admin)
    client.post(f"/rollout/{environment.name}/kill-switch/", {"engaged": "on", "reason": "incident 7"})
    assert environment.kill_switch_engaged
    assert "Kill switch engaged" in client.get("/rollout/").content.decode()

    response = api_as(admin).post(f"/api/v1/environments/{environment.name}/kill-switch/",
                                  {"engaged": False, "reason": "resolved"}, format="json")
    assert response.status_code == 200 and response.data["kill_switch_engaged"] is False
    assert list(KillSwitchChange.objects.values_list("engaged", flat=True)) == [False, True]
    auditor = api_as(make_user("auditor"))
    assert auditor.post(f"/api/v1/environments/{environment.name}/kill-switch/",
                        {"engaged": True, "reason": "x"}, format="json").status_code == 403


PREVIEW_FORM = {"mode": "dry-run", "enforce_percentage": 0, "enforce_users": "", "enforce_agents": "",
                "dry_run_users": "", "user_field": "user.id", "agent_field": "agent.id"}


def preview_as(client, user, **form):
    client.force_login(user)
    response = client.post(f"/rollout/{Environment.objects.default().name}/budget/preview/", PREVIEW_FORM | form)
    assert response.status_code == 200
    return response


@pytest.fixture
def decided(policy):
    """dana decided 3 times, with a ticket field in her input; nobody else is named anywhere."""
    for _ in range(3):
        DecisionFactory(policy=policy, input={"user": {"id": "dana"}, "ticket": {"owner": "erin"}})
    DecisionFactory(policy=policy, input={"user": {"id": "someone"}})


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(names=st.lists(st.sampled_from(["dana", "erin", "mallory", "someone"]), max_size=3),
       field=st.sampled_from(["user.id", "ticket.owner", "input.ticket.owner", "agent.id"]))
def test_a_compliance_officer_cannot_probe_who_decided_through_the_preview(client, make_user, decided, names, field):
    officer = make_user("compliance_officer")
    response = preview_as(client, officer, enforce_users="\n".join(names), user_field=field)
    # Whatever names and input path are guessed, the counts are those of the policy's own fields.
    assert (response.context["preview"].decisions, response.context["preview"].enforced) == (4, 0)
    assert 'data-testid="preview-aggregate-only"' in response.content.decode()


def test_a_decision_reader_previews_any_proposal(client, make_user, decided):
    admin = make_user("security_admin")
    assert preview_as(client, admin, enforce_users="dana").context["preview"].enforced == 3
    assert preview_as(client, admin, enforce_users="erin", user_field="ticket.owner").context["preview"].enforced == 3
    officer = make_user("compliance_officer")  # the same proposals, counted under the policy's own fields
    assert preview_as(client, officer, enforce_users="dana").context["preview"].enforced == 0
    assert preview_as(client, officer, enforce_percentage=100).context["preview"].enforced == 4


def test_waived_decisions_are_listed_only_to_decision_readers(client, make_user, policy):
    exception = policy_exceptions.approve_exception(policy_exceptions.request_exception(
        policy=policy, environment=Environment.objects.default(), match=[{"field": "user.id", "value": "dana"}],
        justification="month end", ticket="SEC-1", expires_at=timezone.now() + timedelta(days=3),
        requested_by=make_user("security_admin")), comment="Checked the ticket", approved_by=make_user("security_admin"))
    waived = DecisionFactory(policy=policy, input={"user": {"id": "dana"}}, exception_ids=[exception.pk])
    client.force_login(make_user("compliance_officer"))
    page = client.get(f"/exceptions/{exception.pk}/").content.decode()
    assert "(1)" in page and 'data-testid="waived-count-only"' in page
    assert waived.decision_id not in page and "dana" not in page.split("Decisions it changed")[1]
    client.force_login(make_user("auditor"))
    page = client.get(f"/exceptions/{exception.pk}/").content.decode()
    assert waived.decision_id in page and 'data-testid="waived-count-only"' not in page


def test_exception_lifecycle_on_the_pages(client, make_user, policy):
    author, admin = make_user("policy_author"), make_user("security_admin")
    client.force_login(author)
    response = client.post("/exceptions/new/", {
        "policy": "budget", "environment": Environment.objects.default().name, "match": "user.id = dana",
        "reason_contains": "budget", "justification": "month-end", "ticket": "SEC-5",
        "expires_at": (timezone.now() + timedelta(days=3)).strftime("%Y-%m-%dT%H:%M")})
    exception = PolicyException.objects.get()
    assert response.url == f"/exceptions/{exception.pk}/"
    assert exception.match == [{"field": "user.id", "value": "dana"}]
    assert "Pending approval" in client.get("/exceptions/?status=pending").content.decode()
    client.post(f"/exceptions/{exception.pk}/approve/")  # the author may not approve
    exception.refresh_from_db()
    assert exception.approved_by is None

    client.force_login(admin)
    client.post(f"/exceptions/{exception.pk}/approve/", {"comment": "ticket checked", "confirmed": "yes"})
    exception.refresh_from_db()
    assert exception.approved_by == admin and exception.status == "active"
    changed = DecisionFactory(policy=policy, exception_ids=[exception.pk])
    detail = client.get(f"/exceptions/{exception.pk}/").content.decode()
    assert changed.decision_id in detail
    assert f"exception {exception.pk}" in client.get(f"/audit/{changed.decision_id}/").content.decode()


def test_exception_tabs(client, make_user, policy):
    admin, other = make_user("security_admin"), make_user("security_admin")
    environment = Environment.objects.default()

    def exception(days, approve=True):
        e = policy_exceptions.request_exception(
            policy=policy, environment=environment, match=[{"field": "user.id", "value": f"u{days}"}],
            justification="j", ticket="T-1", expires_at=timezone.now() + timedelta(days=days), requested_by=admin)
        if approve:
            policy_exceptions.approve_exception(e, comment="Checked the ticket", approved_by=other)
        return e

    soon, later, pending = exception(2), exception(30), exception(10, approve=False)
    PolicyException.objects.filter(pk=exception(1).pk).update(expires_at=timezone.now() - timedelta(hours=1))
    client.force_login(make_user("compliance_officer"))
    tabs = {key: list(client.get("/exceptions/", {"status": key}).context["exceptions"])
            for key in ("active", "pending", "expiring", "expired")}
    assert tabs["active"] == [soon, later]
    assert tabs["pending"] == [pending]
    assert tabs["expiring"] == [soon]
    assert len(tabs["expired"]) == 1


def test_exception_api_refuses_self_approval(make_user, policy):
    admin = make_user("security_admin")
    api = api_as(admin)
    created = api.post("/api/v1/exceptions/", {
        "policy": "budget", "environment": Environment.objects.default().name,
        "match": [{"field": "user.id", "value": "dana"}], "justification": "why", "ticket": "SEC-1",
        "expires_at": (timezone.now() + timedelta(days=1)).isoformat()}, format="json")
    assert created.status_code == 201, created.content
    refused = api.post(f"/api/v1/exceptions/{created.data['id']}/approve/", {"comment": "ok"}, format="json")
    assert refused.status_code == 403 and "own" in refused.data["detail"]
    approved = api_as(make_user("security_admin")).post(f"/api/v1/exceptions/{created.data['id']}/approve/",
                                                      {"comment": "ok"}, format="json")
    assert approved.status_code == 200 and approved.data["status"] == "active"


def test_canary_api_saves_a_new_state(make_user, policy):
    api = api_as(make_user("security_admin"))
    response = api.post("/api/v1/canary-settings/", {
        "policy": "budget", "environment": Environment.objects.default().name, "mode": Mode.DRY_RUN,
        "enforce_percentage": 25, "enforce_users": ["alice"], "reason": "canary"}, format="json")
    assert response.status_code == 201, response.content
    assert canary.current_rollout(policy, Environment.objects.default()).enforce_percentage == 25
    bad = api.post("/api/v1/canary-settings/", {"policy": "budget", "environment": Environment.objects.default().name,
                                                "enforce_percentage": 140, "reason": "x"}, format="json")
    assert bad.status_code == 400 and "enforce_percentage" in bad.data
