"""Impact analysis replays recorded decisions through a candidate version in the real OPA,
in batches, and reports exactly which decisions would change."""
import json
from datetime import timedelta

import pytest
from django.core.management import CommandError, call_command
from django.utils import timezone
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from core.models import Decision, Outcome
from core.opa import evaluation
from core.opa.client import opa_client
from policies import replay, services
from tests.factories import DecisionFactory, PolicyFactory
from tests.support import wait_until

CURRENT = """package gavel.tool_access

default allow := false

deny contains "user is blocked" if input.user in {"mallory", "suspended-7"}

deny contains sprintf("token budget %d is over 10000", [input.tokens]) if input.tokens > 10000

allow if count(deny) == 0

decision := {"allow": allow, "reasons": sort(deny)}
"""
# The candidate lowers the budget to 6000, unblocks suspended-7 and holds deletes for approval.
CANDIDATE = """package gavel.tool_access

default allow := false

default require_approval := false

deny contains "user is blocked" if input.user == "mallory"

deny contains sprintf("token budget %d is over 6000", [input.tokens]) if input.tokens > 6000

allow if count(deny) == 0

require_approval if {
	count(deny) == 0
	input.action == "delete"
}

decision := {"allow": allow, "reasons": sort(deny), "require_approval": require_approval}
"""
EXPECTED = {"allow_to_deny": 4, "deny_to_allow": 4, "reasons_changed": 2, "to_approval": 2, "from_approval": 0,
            "undefined": 0}


def record(policy, user, tokens, outcome, reasons=(), minutes_ago=1, **kwargs):
    result = {"allow": outcome in (Outcome.ALLOW, Outcome.WOULD_DENY), "reasons": list(reasons)}
    return DecisionFactory(policy=policy, path="gavel_entry/tool_access/decision",
                           input={"user": user, "tokens": tokens, "action": kwargs.pop("action", "read")},
                           outcome=outcome, reasons=list(reasons), result=kwargs.pop("result", result),
                           timestamp=timezone.now() - timedelta(minutes=minutes_ago),
                           effective_mode=kwargs.pop("effective_mode", "enforce"),
                           **kwargs)


@pytest.fixture
def recorded(db, make_user):
    """22 recorded decisions of tool_access v1 (20 comparable) and a candidate v2 that flips exactly 12."""
    author = make_user("policy_author")
    policy = PolicyFactory(name="tool_access", source=CURRENT, author=author)
    blocked = ["user is blocked"]
    flips = {key: [] for key in EXPECTED}
    for n in range(4):  # 8000 tokens: allowed under 10000, denied under 6000
        flips["allow_to_deny"].append(record(policy, f"u-{n}", 8000, Outcome.ALLOW, minutes_ago=0))  # the newest
    for n in range(3):  # suspended-7 is unblocked
        flips["deny_to_allow"].append(record(policy, "suspended-7", 100, Outcome.DENY, blocked))
    # a dry-run "would deny" was the policy denying: it flips too
    flips["deny_to_allow"].append(record(policy, "suspended-7", 100, Outcome.WOULD_DENY, blocked,
                                         effective_mode="dry-run"))
    for n in range(2):  # still denied, now also for the budget
        flips["reasons_changed"].append(record(policy, "mallory", 8000, Outcome.DENY, blocked))
    for n in range(2):
        flips["to_approval"].append(record(policy, f"u-{n}", 100, Outcome.ALLOW, action="delete"))
    unchanged = [record(policy, f"u-{n}", 1000, Outcome.ALLOW, minutes_ago=30 + n) for n in range(5)]
    unchanged += [record(policy, "mallory", 100, Outcome.DENY, blocked, minutes_ago=40) for _ in range(2)]
    # an exception waived the denial: the policy denied, and still does
    unchanged.append(record(policy, "mallory", 100, Outcome.ALLOW, exception_ids=[7], minutes_ago=41))
    record(policy, "u-1", 100, Outcome.ALLOW, effective_mode="off", minutes_ago=50)  # skipped: mode off
    DecisionFactory(policy=policy, input=None, timestamp=timezone.now() - timedelta(minutes=51))  # skipped
    DecisionFactory(input={"user": "mallory", "tokens": 1})  # another policy's decision: never selected
    candidate = services.save_version(policy, source=CANDIDATE, author=author, message="tighter budget")
    return candidate, flips


def test_replay_reports_the_exact_flips_of_a_known_change(opa, recorded):
    candidate, flips = recorded
    report = replay.replay_version(candidate, last=1000)
    assert report.changes == EXPECTED
    assert (report.selected, report.replayed, report.changed) == (22, 20, 12)
    assert report.skipped == {"mode_off": 1, "no_input": 1}
    for key, decisions in flips.items():
        assert {e["decision_id"] for e in report.examples[key]} == {d.decision_id for d in decisions}
    reasons = report.examples["reasons_changed"][0]
    assert reasons["reasons_before"] == ["user is blocked"]
    assert reasons["reasons_after"] == ["token budget 8000 is over 6000", "user is blocked"]
    # The candidate was evaluated in Gavel's sandbox: the fleet's OPA never held it.
    with opa_client() as client:
        assert not [p for p in client.list_policy_ids() if p.startswith("gavel_replay/")]


def test_inputs_are_batched_many_per_round_trip_and_each_distinct_one_evaluated_once(opa, recorded, settings):
    candidate, _ = recorded
    settings.GAVEL_REPLAY_CHUNK = 5
    report = replay.replay_version(candidate)
    # 20 comparable decisions, 14 distinct inputs (suspended-7's four, mallory's 8000 two and
    # mallory's 100 three are one input each), 5 per request.
    assert (report.replayed, report.distinct, report.round_trips) == (20, 14, 3)
    assert report.changes == EXPECTED


def test_the_window_is_the_last_n_or_a_time_range(opa, recorded):
    candidate, flips = recorded
    assert replay.replay_version(candidate, last=4).changes["allow_to_deny"] == 4
    assert replay.replay_version(candidate, last=4).selected == 4
    now = timezone.now()
    old_only = replay.replay_version(candidate, since=now - timedelta(minutes=45), until=now - timedelta(minutes=20))
    assert (old_only.selected, old_only.changed) == (8, 0)
    with pytest.raises(replay.ReplayRefused, match="since must be before until"):
        replay.replay_version(candidate, since=now, until=now - timedelta(hours=1))
    with pytest.raises(replay.ReplayRefused, match="between 1 and"):
        replay.replay_version(candidate, last=0)
    with pytest.raises(replay.ReplayRefused, match="not a date"):
        replay.replay_version(candidate, since="yesterday")


def test_the_package_is_renamed_where_opa_locates_it_and_nothing_else_changes():
    source = "# package gavel.decoy in a comment\npackage   gavel.tool_access # trailing\n\nx := \"package gavel.tool_access\"\n"
    renamed = evaluation.scratch_source(source, "gavel_replay.rabc")
    assert renamed == source.replace("package   gavel.tool_access #", "package   gavel_replay.rabc #")


def test_replay_through_the_api_page_and_command(opa, recorded, client, make_user):
    candidate, flips = recorded
    auditor_like = make_user("security_admin")
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Token {Token.objects.create(user=auditor_like).key}")
    answer = api.post("/api/v1/policies/tool_access/versions/2/replay/", {"last": 1000}, format="json")
    assert answer.status_code == 200, answer.content
    assert answer.json()["changes"] == EXPECTED and answer.json()["changed"] == 12
    bad = api.post("/api/v1/policies/tool_access/versions/2/replay/",
                   {"since": "2025-01-02T00:00:00Z", "until": "2025-01-01T00:00:00Z"}, format="json")
    assert bad.status_code == 400 and "since must be before until" in bad.json()["detail"]
    compliance = APIClient()
    compliance.force_authenticate(make_user("compliance_officer"))  # reads policies, not decisions
    assert compliance.post("/api/v1/policies/tool_access/versions/2/replay/", {}, format="json").status_code == 403

    client.force_login(auditor_like)
    page = client.post("/policies/tool_access/v2/replay/", {"last": "1000"}, HTTP_HX_REQUEST="true").content.decode()
    assert 'data-testid="replay-changed">12<' in page
    assert f'href="/audit/{flips["deny_to_allow"][0].decision_id}/"' in page
    assert "between 1 and" in client.post("/policies/tool_access/v2/replay/", {"last": "-3"},
                                          HTTP_HX_REQUEST="true").content.decode()

    call_command("replay_version", "tool_access", "1")  # v1 against its own decisions: no gate tripped
    with pytest.raises(CommandError, match="12 decision") as tripped:
        call_command("replay_version", "tool_access", "2", "--fail-on-change")
    assert tripped.value.returncode == 3
    with pytest.raises(CommandError, match="no version 9"):
        call_command("replay_version", "tool_access", "9")


def test_the_command_prints_json(opa, recorded, capsys):
    call_command("replay_version", "tool_access", "2", "--last", "4", "--json")
    assert json.loads(capsys.readouterr().out)["changes"]["allow_to_deny"] == 4


@pytest.mark.django_db(transaction=True)
def test_replay_queries_stay_out_of_the_audit_trail(opa, celery_worker, live_server, make_user):
    """OPA decision-logs ad-hoc queries too; the replay's are dropped inside OPA."""
    policy = PolicyFactory(name="tool_access", source=CURRENT)
    record(policy, "mallory", 100, Outcome.DENY, ["user is blocked"])
    candidate = services.save_version(policy, source=CANDIDATE, author=make_user(), message="v2")
    assert replay.replay_version(candidate).replayed == 1
    with opa_client() as client:  # a decision after the replay: once it is stored, the replay's would be too
        marker = client.decide("gavel/nothing/here", {"marker": True})["decision_id"]
    wait_until(lambda: Decision.objects.filter(decision_id=marker).exists(), timeout=30, message="the marker")
    assert not Decision.objects.exclude(decision_id=marker).filter(path="").exists()
    assert Decision.objects.count() == 2
