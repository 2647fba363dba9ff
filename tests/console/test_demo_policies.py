"""The demo policies compile, each rule fires as meant, and the traffic generator feeds them well."""
import json
import random
import subprocess
from collections import Counter
from pathlib import Path

import pytest
from django.conf import settings

from console.demo.traffic import random_request
from core.outcomes import derive_outcome

POLICY_DIR = Path(__file__).resolve().parents[2] / "console" / "demo" / "policies"
PACKAGES = ("agent_gateway", "platform_changes")


def opa(*args, stdin=None):
    return subprocess.run([settings.OPA_BINARY, *args], input=stdin, capture_output=True, text=True, timeout=30)


def decide(package, document):
    """data.gavel.<package>.decision for one input, via `opa eval`."""
    result = opa("eval", "--format", "json", "-d", str(POLICY_DIR / f"{package}.rego"), "-I",
                 f"data.gavel.{package}.decision", stdin=json.dumps(document))
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)["result"][0]["expressions"][0]["value"]


def decide_many(package, documents):
    """The decisions for many inputs from one `opa eval`: the inputs are the input, each swapped in with `with`."""
    query = f"[d | some doc in input; d := data.gavel.{package}.decision with input as doc]"
    result = opa("eval", "--format", "json", "-d", str(POLICY_DIR / f"{package}.rego"), "-I", query,
                 stdin=json.dumps(documents))
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)["result"][0]["expressions"][0]["value"]


@pytest.mark.parametrize("package", PACKAGES)
def test_policy_compiles_strictly(package):
    result = opa("check", "--strict", str(POLICY_DIR / f"{package}.rego"))
    assert result.returncode == 0, result.stdout + result.stderr


def gateway_request(**overrides):
    request = {
        "user": {"id": "u-101", "team": "support"},
        "agent": {"id": "support-bot", "type": "assistant"},
        "tool": "sql.query",
        "action": "read",
        "args": {"query": "SELECT count(*) FROM tickets"},
        "token_budget": 4000,
        "environment": "prod",
        "resource": "db/analytics",
    }
    return request | overrides


ALLOWED = {"allow": True, "reasons": [], "require_approval": False}


def held(reason):
    return {"allow": False, "reasons": [reason], "require_approval": True}


TICKET_DELETE_HELD = held("ticket.delete on db/analytics in production needs a reviewer's approval")


def denied(*reasons):
    return {"allow": False, "reasons": sorted(reasons), "require_approval": False}


@pytest.mark.parametrize("request_, expected", [
    (gateway_request(), ALLOWED),
    (gateway_request(user={"id": "u-107", "team": "billing"}), denied("user u-107 is suspended")),
    (gateway_request(tool="k8s.delete", action="delete"), denied("agent support-bot may not call tool k8s.delete")),
    (gateway_request(agent={"id": "rogue-bot"}), denied("agent rogue-bot may not call tool sql.query")),
    (gateway_request(token_budget=9000), denied("token budget 9000 exceeds the limit of 8000")),
    (gateway_request(args={"query": "SELECT Password FROM users"}),
     denied('argument query contains the forbidden pattern "password"')),
    (gateway_request(args={"query": "Drop Table users"}),
     denied('argument query contains the forbidden pattern "drop table"')),
    (gateway_request(args={"query": "SELECT 1; -- x"}), denied('argument query contains the forbidden pattern "; --"')),
    (gateway_request(tool="ticket.delete", action="delete"), TICKET_DELETE_HELD),
    (gateway_request(tool="ticket.delete", action="delete", environment="staging"), ALLOWED),
    (gateway_request(tool="ticket.delete", action="delete", approval={"approved_by": "u-120"}), ALLOWED),
    (gateway_request(tool="ticket.delete", action="delete", approval={"approved_by": "u-101"}), TICKET_DELETE_HELD),  # not self
    # A denied delete is denied, not held: a reviewer should never be asked to approve it.
    (gateway_request(tool="ticket.delete", action="delete", user={"id": "u-118"}), denied("user u-118 is suspended")),
    ("not an object", denied("input must be a JSON object")),
])
def test_agent_gateway(request_, expected):
    assert decide("agent_gateway", request_) == expected


def change(resource_type, spec, action="create", **extra):
    return {"action": action, "resource_type": resource_type, "requested_by": "ci-pipeline", "spec": spec} | extra


QUEUE = {"name": "Billing", "sla_seconds": 30, "routing_method": "skills"}
USER = {"email": "ana.souza@example.com", "role": "agent"}
BUCKET = {"name": "call-recordings", "encryption": "kms"}


@pytest.mark.parametrize("request_, expected", [
    (change("queue", QUEUE), ALLOWED),
    (change("user", USER), ALLOWED),
    (change("bucket", BUCKET, action="update"), ALLOWED),
    (change("queue", QUEUE | {"sla_seconds": 0}), denied("queue Billing must define an SLA greater than 0 seconds")),
    (change("queue", {"name": "Billing", "sla_seconds": 30}),
     denied('queue Billing must use one of the routing methods ["bullseye", "longest_idle", "round_robin", "skills"]')),
    (change("user", USER | {"email": "ana@gmail.com"}), denied("user email ana@gmail.com is not a corporate address")),
    (change("user", USER | {"role": "org_admin"}), denied("role org_admin needs a change ticket (CHG-nnnn)")),
    (change("user", USER | {"role": "org_admin"}, ticket="CHG-4711"), ALLOWED),
    (change("bucket", BUCKET | {"encryption": "none"}),
     denied("bucket call-recordings must be encrypted at rest (aes256 or kms)")),
    (change("bucket", {"name": "exports"}), denied("bucket exports must be encrypted at rest (aes256 or kms)")),
    (change("dns_zone", {}), denied("resource type dns_zone is not managed by this pipeline")),
    (change("queue", QUEUE, action="patch"), denied("action patch is not supported")),
    (change("queue", {"name": "Old"}, action="delete"), held("deleting queue Old needs a reviewer's approval")),
])
def test_platform_changes(request_, expected):
    assert decide("platform_changes", request_) == expected


def test_generated_traffic_gets_decisions_in_a_realistic_mix():
    assert random_request(random.Random(7)) == random_request(random.Random(7))  # a seed repeats the stream

    rng = random.Random(7)
    requests = [random_request(rng) for _ in range(500)]
    outcomes = Counter()
    for package in PACKAGES:
        path = f"gavel_entry/{package}/decision"
        documents = [document for p, document in requests if p == path]
        assert documents, f"no traffic for {path}"
        for decision in decide_many(package, documents):
            assert isinstance(decision["allow"], bool) and isinstance(decision["require_approval"], bool)
            outcomes[derive_outcome(decision)[0]] += 1
    assert sum(outcomes.values()) == 500  # every path the generator uses is one of the demo entrypoints
    assert 0.60 <= outcomes["allow"] / 500 <= 0.80
    assert 0.12 <= outcomes["deny"] / 500 <= 0.30
    assert 0.03 <= outcomes["require_approval"] / 500 <= 0.12
    assert any("<b>" in json.dumps(document) for _, document in requests)  # escaping gets exercised
