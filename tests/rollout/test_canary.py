"""Canary rollout and exceptions, decided inside the real OPA by Gavel's entrypoint."""
import time
from datetime import timedelta

import pytest
from django.core.exceptions import PermissionDenied
from django.utils import timezone

from core.opa.client import opa_client
from fleet.models import Environment
from policies import services
from policies.models import Publication
from rollout import exceptions as policy_exceptions
from rollout import runtime
from rollout import services as rollout_services
from rollout.canary import Rollout
from rollout.models import Mode
from tests.factories import PolicyFactory

pytestmark = pytest.mark.django_db

BUDGET = """package gavel.budget

default allow := false

deny contains sprintf("token budget %v is over 1000", [input.tokens]) if input.tokens > 1000

deny contains "user is blocked" if input.user.id in {"mallory"}

deny contains sprintf("tool %v is not allowed", [input.tool]) if input.tool == "shell"

allow if count(deny) == 0

decision := {"allow": allow, "reasons": sort(deny)}
"""
USERS = [f"user-{n}" for n in range(10_000)]


@pytest.fixture
def budget(opa, make_user):
    """The budget policy, published to the test OPA with its entrypoint."""
    policy = PolicyFactory(name="budget", source=BUDGET)
    publication = Publication.objects.create(version=policy.latest_version, requested_by=make_user(),
                                             target_url=opa, environment=Environment.objects.default())
    assert services.attempt_publication(publication).status == Publication.Status.OK, publication.detail
    policy.refresh_from_db()
    return policy


@pytest.fixture
def admin(make_user):
    return make_user("security_admin")


def roll_out(policy, admin, **values):
    environment = Environment.objects.default()
    rollout_services.change_rollout(policy, environment, Rollout(**values), changed_by=admin, reason="test")
    runtime.push_runtime_config(environment)  # what the worker does once the change commits


def decide(request):
    with opa_client() as opa:
        return opa.decide("gavel_entry/budget/decision", request)["result"]


def modes_in_opa(users):
    """Every user's effective mode, evaluated by the entrypoint in one round trip."""
    query = ("modes := [mode | some user in input.users; "
             "mode := data.gavel_entry.budget.effective_mode with input as {\"user\": {\"id\": user}}]")
    # 10,000 evaluations in one query: seconds on a loaded machine, past the client's usual 5 s.
    with opa_client(timeout=60) as opa:
        return dict(zip(users, opa.query(query, {"users": users})[0]["modes"]))


def test_ten_percent_enforces_about_a_tenth_and_twenty_keeps_them(budget, admin):
    roll_out(budget, admin, mode=Mode.DRY_RUN, enforce_percentage=10)
    at_ten = modes_in_opa(USERS)
    enforced_at_ten = {user for user, mode in at_ten.items() if mode == "enforce"}
    assert 700 <= len(enforced_at_ten) <= 1300, len(enforced_at_ten)
    assert set(at_ten.values()) == {"enforce", "dry-run"}

    # Gavel's Python preview puts every user in the same bucket OPA does.
    python_enforced = {u for u in USERS if Rollout(mode=Mode.DRY_RUN, enforce_percentage=10)
                       .effective_mode({"user": {"id": u}}) == "enforce"}
    assert python_enforced == enforced_at_ten

    roll_out(budget, admin, mode=Mode.DRY_RUN, enforce_percentage=20)
    enforced_at_twenty = {user for user, mode in modes_in_opa(USERS).items() if mode == "enforce"}
    assert enforced_at_ten < enforced_at_twenty
    assert 1600 <= len(enforced_at_twenty) <= 2400


def test_precedence_dry_run_users_then_enforce_users_and_agents_then_percentage(budget, admin):
    roll_out(budget, admin, mode=Mode.DRY_RUN, enforce_percentage=100, dry_run_users=("tester",),
             enforce_users=("tester", "alice"), enforce_agents=("deploy-bot",))
    assert decide({"user": {"id": "tester"}})["effective_mode"] == "dry-run"  # dry-run users come first
    roll_out(budget, admin, mode=Mode.DRY_RUN, enforce_users=("alice",), enforce_agents=("deploy-bot",))
    assert decide({"user": {"id": "alice"}})["effective_mode"] == "enforce"
    assert decide({"user": {"id": "bob"}, "agent": {"id": "deploy-bot"}})["effective_mode"] == "enforce"
    assert decide({"user": {"id": "bob"}})["effective_mode"] == "dry-run"


def test_dry_run_allows_a_would_be_deny_and_says_so(budget, admin):
    roll_out(budget, admin, mode=Mode.DRY_RUN)
    result = decide({"user": {"id": "dana"}, "tokens": 5000})
    assert result["allow"] is True and result["would_deny"] is True
    assert result["effective_mode"] == "dry-run"
    assert result["reasons"] == ["token budget 5000 is over 1000"]
    assert result["policy"] == "budget" and result["policy_version"] == 1


def test_kill_switch_turns_every_enforced_deny_into_a_dry_run_allow(budget, admin):
    roll_out(budget, admin, mode=Mode.ENFORCE)
    requests = [{"user": {"id": f"user-{n}"}, "tokens": 5000} for n in range(50)]
    assert all(decide(r)["allow"] is False for r in requests)

    environment = Environment.objects.default()
    rollout_services.set_kill_switch(environment, engaged=True, changed_by=admin, reason="incident 42")
    runtime.push_runtime_config(environment)

    results = [decide(r) for r in requests]
    assert all(r["allow"] and r["would_deny"] and r["effective_mode"] == "dry-run" for r in results)

    rollout_services.set_kill_switch(environment, engaged=False, changed_by=admin, reason="incident over")
    runtime.push_runtime_config(environment)
    assert decide(requests[0])["allow"] is False


def test_exception_waives_exactly_the_covered_deny_until_its_expiry(budget, admin, make_user):
    environment = Environment.objects.default()
    expires_at = timezone.now() + timedelta(seconds=10)  # room for a loaded machine before the expiry
    exception = policy_exceptions.request_exception(
        policy=budget, environment=environment, match=[{"field": "user.id", "value": "dana"}],
        reason_contains="token budget", justification="quarter-end report", ticket="SEC-101",
        expires_at=expires_at, requested_by=make_user("policy_author"),
    )
    policy_exceptions.approve_exception(exception, comment="Checked the ticket", approved_by=admin)
    runtime.push_runtime_config(environment)

    waived = decide({"user": {"id": "dana"}, "tokens": 5000})
    assert waived["allow"] is True and waived["exceptions_applied"] == [exception.pk]
    assert decide({"user": {"id": "erin"}, "tokens": 5000})["allow"] is False  # not covered: another user
    # The covered user, also denied for a reason the exception does not name: only that reason is left.
    partly = decide({"user": {"id": "dana"}, "tokens": 5000, "tool": "shell"})
    assert partly["allow"] is False
    assert partly["reasons"] == ["tool shell is not allowed"] and partly["exceptions_applied"] == [exception.pk]

    # No push after this point: OPA itself stops applying the exception at its expiry.
    while time.time() < expires_at.timestamp():
        time.sleep(0.01)
    lapsed = decide({"user": {"id": "dana"}, "tokens": 5000})
    assert lapsed["allow"] is False and lapsed["exceptions_applied"] == []

    assert runtime.runtime_config(environment)["policies"]["budget"]["exceptions"] == []


def test_an_exception_needs_a_second_security_admin(budget, admin, make_user):
    environment = Environment.objects.default()
    exception = policy_exceptions.request_exception(
        policy=budget, environment=environment, match=[{"field": "user.id", "value": "dana"}],
        justification="why", ticket="SEC-1", expires_at=timezone.now() + timedelta(days=1), requested_by=admin,
    )
    with pytest.raises(PermissionDenied, match="own"):
        policy_exceptions.approve_exception(exception, comment="Checked the ticket", approved_by=admin)
    with pytest.raises(PermissionDenied, match="security admin"):
        policy_exceptions.approve_exception(exception, comment="Checked the ticket", approved_by=make_user("auditor"))
    assert runtime.runtime_config(environment)["policies"]["budget"]["exceptions"] == []  # pending: not in OPA
    policy_exceptions.approve_exception(exception, comment="Checked the ticket", approved_by=make_user("security_admin"))
    assert [e["id"] for e in runtime.runtime_config(environment)["policies"]["budget"]["exceptions"]] == [
        exception.pk]


@pytest.mark.django_db(transaction=True)
def test_the_periodic_push_removes_expired_exceptions_from_opa(budget, admin, make_user, celery_worker):
    from rollout.tasks import push_all_runtime_configs
    from tests.support import wait_until

    environment = Environment.objects.default()
    exception = policy_exceptions.request_exception(
        policy=budget, environment=environment, match=[{"field": "user.id", "value": "dana"}],
        justification="j", ticket="T", expires_at=timezone.now() + timedelta(hours=1), requested_by=admin)
    policy_exceptions.approve_exception(exception, comment="Checked the ticket", approved_by=make_user("security_admin"))
    with opa_client() as opa:
        wait_until(lambda: opa.get_data("gavel_config/policies/budget/exceptions"), message="the exception in OPA")
        type(exception).objects.filter(pk=exception.pk).update(expires_at=timezone.now())  # it lapses

        push_all_runtime_configs.delay()  # what beat runs every minute

        wait_until(lambda: opa.get_data("gavel_config/policies/budget/exceptions") == [],
                   message="the expired exception to leave OPA")
