"""The data Gavel pushes for the entrypoint (rollout/runtime.py), shaped so that OPA does the
least work per request, decides exactly what Gavel's own rules (rollout/canary.py) decide."""
import random
import time

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from core.opa.client import opa_client
from rollout import runtime
from rollout.canary import Rollout, field_path, user_bucket, value_at
from rollout.entrypoint import BUCKET, FAST_BUCKET
from rollout.models import Mode
from tests.rollout.test_canary import budget  # noqa: F401  (the fixture: budget published with its entrypoint)

pytestmark = pytest.mark.django_db

NAMES = ["alice", "bob", "carol", "dana", "erin", "deploy-bot", "ci-bot", "5"]


def random_rollout(rng: random.Random) -> Rollout:
    return Rollout(
        mode=rng.choice(list(Mode)),
        enforce_percentage=rng.choice([0, 0, 100, rng.randint(1, 99), rng.randint(1, 99)]),
        enforce_users=tuple(rng.sample(NAMES, rng.randint(0, 3))),
        enforce_agents=tuple(rng.sample(NAMES, rng.randint(0, 2))),
        dry_run_users=tuple(rng.sample(NAMES, rng.randint(0, 3))),
        user_field=rng.choice(["user.id", "user", "actor.name"]),
        agent_field=rng.choice(["agent.id", "agent"]),
    )


def random_request(rng: random.Random):
    if rng.random() < 0.05:
        return rng.choice([["not", "an", "object"], "text", 7])
    user = rng.choice(NAMES + [f"user-{rng.randint(0, 10_000)}", 5, True])
    shape = rng.choice(["user.id", "user", "actor.name", "none"])
    request = {} if shape == "none" else ({"user": {"id": user}} if shape == "user.id" else
                                          {"user": user} if shape == "user" else {"actor": {"name": user}})
    if rng.random() < 0.5:
        request["agent"] = rng.choice([{"id": rng.choice(NAMES)}, rng.choice(NAMES)])
    return request


def test_the_entrypoint_decides_the_mode_python_decides_for_any_rollout(budget):  # noqa: F811
    """600 rollouts (kill switch, percentages from 0 to 100, overlapping lists, other fields) and
    requests (other shapes, numbers, booleans, not objects), all evaluated by OPA in one query."""
    rng = random.Random(17)
    cases, expected = [], []
    for _ in range(600):
        rollout, kill_switch, request = random_rollout(rng), rng.random() < 0.1, random_request(rng)
        while isinstance(value_at(request if isinstance(request, dict) else {}, field_path(rollout.user_field)),
                         (dict, list)):
            request = random_request(rng)  # user ids are text, numbers or booleans (an object's text differs)
        document = runtime.rollout_document(rollout, [], kill_switch)
        config = {"kill_switch": kill_switch, "policies": {"budget": document}}
        cases.append({"config": config, "request": request})
        expected.append(str(rollout.effective_mode(request, kill_switch)))
    # (The case's parts bound first: OPA does not take `with ... as case.config` inside a comprehension.)
    query = ("modes := [mode | some case in input.cases; request := case.request; config := case.config; "
             "mode := data.gavel_entry.budget.effective_mode with input as request with data.gavel_config as config]")
    with opa_client(timeout=120) as opa:
        assert opa.query(query, {"cases": cases})[0]["modes"] == expected


def decide(config, request):
    """The entrypoint's decision with `config` as data.gavel_config, in one query (no push for
    another test's worker to overwrite)."""
    query = ("request := input.request; config := input.config; "
             "decision := data.gavel_entry.budget.decision with input as request with data.gavel_config as config")
    with opa_client() as opa:
        return opa.query(query, {"request": request, "config": config})[0]["decision"]


def test_before_the_first_push_everyone_is_enforced_or_dry_run_under_the_kill_switch(budget):  # noqa: F811
    assert decide({"kill_switch": False, "policies": {}}, {"user": {"id": "u"}})["effective_mode"] == "enforce"
    assert decide({"kill_switch": True, "policies": {}}, {"user": {"id": "u"}})["effective_mode"] == "dry-run"


def test_the_bucket_is_hashed_only_when_the_percentage_decides(budget):  # noqa: F811
    def traced(rollout):
        """The user's mode, and whether OPA's full trace of it evaluated the bucket."""
        config = {"kill_switch": False, "policies": {"budget": runtime.rollout_document(rollout, [])}}
        query = ("request := input.request; config := input.config; mode := data.gavel_entry.budget.effective_mode "
                 "with input as request with data.gavel_config as config")
        with opa_client() as opa:
            rows, trace = opa.query_explained(query, {"request": {"user": {"id": "zoe"}}, "config": config})
        assert rows[0]["mode"] == rollout.effective_mode({"user": {"id": "zoe"}})
        return any("user_bucket" in line for line in trace)

    assert traced(Rollout(mode=Mode.DRY_RUN, enforce_percentage=30))
    assert not traced(Rollout(mode=Mode.DRY_RUN))
    assert not traced(Rollout(mode=Mode.DRY_RUN, enforce_percentage=100))
    assert not traced(Rollout(mode=Mode.DRY_RUN, enforce_percentage=30, dry_run_users=("zoe",)))
    assert not traced(Rollout(mode=Mode.DRY_RUN, enforce_percentage=30, enforce_users=("zoe",)))


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(users=st.lists(st.text(max_size=40), min_size=1, max_size=40))
def test_both_ways_of_reading_the_bucket_agree_with_python(opa, users):
    """The entrypoint reads the hash's first 8 hex digits with to_number, and falls back to looking
    its bytes up on an OPA that refuses Go's hexadecimal form: this OPA takes the fast way, and both
    give Python's bucket (rollout/canary.py) for any user text."""
    query = (f"buckets := [[fast, looked] | some user in input; digest := crypto.sha256(user); "
             f"fast := {FAST_BUCKET} % 100; looked := ({BUCKET}) % 100]")
    with opa_client() as client:
        buckets = client.query(query, users)[0]["buckets"]
    assert buckets == [[user_bucket(user)] * 2 for user in users]


def exception(id, match, reason_contains="", expires_in=3600):
    return {"id": id, "reason_contains": reason_contains,
            "match": [{"path": path.split("."), "value": value} for path, value in match],
            "expires_ns": time.time_ns() + expires_in * 1_000_000_000}


def test_exceptions_are_found_by_any_of_their_fields_numbers_and_booleans_too(budget):  # noqa: F811
    exceptions = [
        exception(1, [("user.id", "dana")], "token budget"),
        exception(2, [("tool", "shell"), ("user.id", "erin")], "tool"),  # listed under its first text field: tool
        exception(3, [("tokens", 5000)], "token budget"),  # no text field: always checked
        exception(4, [("user.vip", True), ("tokens", 7000)]),
        exception(5, [("user.id", "frank")], expires_in=-1),  # expired: OPA ignores it
    ]
    document = runtime.rollout_document(Rollout(mode=Mode.ENFORCE), exceptions)
    assert set(document["entrypoint"]["exception_fields"]) == {"user.id", "tool"}
    assert [e["id"] for e in document["entrypoint"]["unindexed_exceptions"]] == [3, 4]

    config = {"kill_switch": False, "policies": {"budget": document}}
    assert decide(config, {"user": {"id": "dana"}, "tokens": 2000})["exceptions_applied"] == [1]
    partly = decide(config, {"user": {"id": "dana"}, "tokens": 2000, "tool": "shell"})
    assert (partly["allow"], partly["reasons"], partly["exceptions_applied"]) == (
        False, ["tool shell is not allowed"], [1])
    both = decide(config, {"user": {"id": "erin"}, "tokens": 2000, "tool": "shell"})
    assert (both["allow"], both["reasons"], both["exceptions_applied"]) == (
        False, ["token budget 2000 is over 1000"], [2])
    assert decide(config, {"user": {"id": "bob"}, "tool": "shell"})["exceptions_applied"] == []  # user is not erin
    assert decide(config, {"user": {"id": "bob"}, "tokens": 5000})["exceptions_applied"] == [3]
    assert decide(config, {"user": {"id": "bob", "vip": True}, "tokens": 7000})["exceptions_applied"] == [4]
    assert decide(config, {"user": {"id": "bob", "vip": "yes"}, "tokens": 7000})["exceptions_applied"] == []
    lapsed = decide(config, {"user": {"id": "frank"}, "tokens": 2000})
    assert (lapsed["allow"], lapsed["exceptions_applied"]) == (False, [])


def test_what_gavel_decides_ahead_for_the_entrypoint():
    both = Rollout(mode=Mode.DRY_RUN, enforce_percentage=30, enforce_users=("ann", "bo"), dry_run_users=("bo",))
    assert both.as_entrypoint_data() == {"mode": "dry-run", "user_path": ["user", "id"], "canary_percentage": 30,
                                         "user_modes": {"ann": "enforce", "bo": "dry-run"}}
    assert both.as_entrypoint_data(kill_switch=True) == {"mode": "dry-run", "user_path": ["user", "id"],
                                                         "user_modes": {}}
    everyone = Rollout(mode=Mode.OFF, enforce_percentage=100, enforce_agents=("bot",), agent_field="agent")
    assert everyone.as_entrypoint_data() == {"mode": "enforce", "user_path": ["user", "id"], "user_modes": {},
                                             "agent_path": ["agent"], "agent_modes": {"bot": "enforce"}}
    # What entrypoints published before these fields read is still there, as it was.
    document = runtime.rollout_document(both, [])
    assert document["enforce_users"] == ["ann", "bo"] and document["exceptions"] == []
