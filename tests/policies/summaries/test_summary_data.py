"""Rules that read data kept outside the policy get worked examples on the pages, with the data the
environment's OPA holds (the session's real OPA); an OPA that cannot be read leaves the page up and
says why in words."""
import json
from datetime import timedelta
from pathlib import Path

import pytest
from django.utils import timezone
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from core.opa.client import opa_client
from fleet.models import Environment
from policies import services, summaries
from policies.authoring import playground
from policies.models import ActiveVersion, VersionSummary
from policies.summaries import ast, outside

pytestmark = pytest.mark.django_db

CORPUS = Path("tests/policies/summaries/corpus")
SOURCE = (CORPUS / "agent_scopes.rego").read_text()
SCOPES = {"support": ["kb.search", "ticket.read"], "ops": ["logs.search", "k8s.get"]}
NOWHERE = "http://127.0.0.1:9"  # nothing listens on the discard port


@pytest.fixture
def scopes_in_opa(opa):
    with opa_client(opa) as client:
        client.put_data("acme", {"scopes": SCOPES, "unrelated": {"secret": "not read"}})
    yield opa
    with opa_client(opa) as client:
        client.put_data("acme", {})


def rule(summary, title):
    return next(r for g in summary["groups"] for r in g["rules"] if r.get("title") == title)


def test_the_page_tries_rules_with_the_data_of_the_environment_the_version_runs_in(
        client, make_user, scopes_in_opa, settings):
    settings.OPA_URL = NOWHERE  # the default environment's OPA is down...
    staging = Environment.objects.create(name="staging", opa_url=scopes_in_opa)  # ...the version runs here
    policy = services.create_policy(name="agent_scopes", title="Agent scopes", source=SOURCE,
                                    author=make_user("policy_author"), message="First")
    version = policy.latest_version
    ActiveVersion.objects.create(policy=policy, environment=staging, version=version, since=timezone.now())
    VersionSummary.objects.filter(version=version).delete()  # made at save, before it ran anywhere

    client.force_login(make_user("compliance_officer"))
    html = client.get("/policies/agent_scopes/v1/summary/").content.decode()
    assert "were tried with the data the staging environment's OPA holds" in html
    summary = summaries.summary_for_version(version)
    assert summary["data_source"]["paths"] == [["acme", "scopes"]]  # only what the policy reads
    for title, statement in (("Tool in scope", "This request is allowed."),
                             ("Tool out of scope", "This request is denied: agent")):
        record = rule(summary, title)
        assert not record["example_note"], record["example_note"]
        triggers, clear = record["examples"]
        assert triggers["agrees"] and clear["agrees"]  # OPA, given the same data, confirmed both
        assert triggers["statement"].startswith(statement)
    allowed = rule(summary, "Tool in scope")["examples"][0]["input"]
    assert allowed["action"]["tool"] in SCOPES[allowed["agent"]["scope"]]  # a real scope and one of its tools
    assert "This request is allowed." in html


def test_an_opa_that_cannot_be_read_leaves_the_page_up_and_says_why(client, make_user, scopes_in_opa,
                                                                    settings, monkeypatch):
    settings.OPA_URL = NOWHERE
    policy = services.create_policy(name="agent_scopes", title="Agent scopes", source=SOURCE,
                                    author=make_user("policy_author"), message="First")
    client.force_login(make_user("compliance_officer"))
    response = client.get("/policies/agent_scopes/v1/summary/")
    assert response.status_code == 200
    html = response.content.decode()
    why = "Gavel could not reach the dev environment&#x27;s OPA to read it"
    assert f"have no worked example: {why}." in html
    assert f"It reads data kept outside the policy (acme › scopes), and {why}." in html

    # OPA answers again: the next look after DATA_RECHECK reads the data and makes the examples.
    settings.OPA_URL = scopes_in_opa
    assert summaries.summary_for_version(policy.latest_version)["data_source"]["read"] is False  # not yet due
    monkeypatch.setattr(summaries, "DATA_RECHECK", timedelta(0))
    summary = summaries.summary_for_version(policy.latest_version)
    assert summary["data_source"]["read"] and not summary["data_source"]["problem"]
    assert rule(summary, "Tool in scope")["examples"][0]["agrees"]
    # Unchanged data is not summarised again.
    stored = VersionSummary.objects.get(version=policy.latest_version)
    assert summaries.summary_for_version(policy.latest_version)["examples"] == stored.data["examples"]


def test_data_the_environment_s_opa_lacks_is_named_for_the_rules_that_read_it(client, make_user, opa):
    with opa_client(opa) as opa_api:
        opa_api.put_data("acme", {"suspended": ["mallory"]})  # but no user_roles, no role_actions
    try:
        policy = services.create_policy(name="api_roles", title="API roles", source=(
            CORPUS / "api_roles.rego").read_text(), author=make_user("policy_author"), message="First")
        summary = summaries.summary_for_version(policy.latest_version)
    finally:
        with opa_client(opa) as opa_api:
            opa_api.put_data("acme", {})
    suspended = rule(summary, "Suspended account")
    assert suspended["examples"][0]["agrees"] and suspended["examples"][0]["input"]["user"] == "mallory"
    assert rule(summary, "Role grants the action")["example_note"].endswith(
        "It reads data kept outside the policy (acme › user_roles, acme › role_actions), and the dev environment's "
        "OPA holds nothing at data.acme.user_roles, data.acme.role_actions.")
    client.force_login(make_user("compliance_officer"))
    html = client.get("/policies/api_roles/v1/summary/").content.decode()
    assert ("; the dev environment&#x27;s OPA holds nothing at data.acme.role_actions, data.acme.user_roles, so the "
            "rules that read it have no worked example.") in html


JSON = st.recursive(st.none() | st.booleans() | st.integers(-10**6, 10**6) | st.text(max_size=8),
                    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3),
                    max_leaves=6)


@hypothesis_settings(max_examples=12, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(keys=st.lists(st.text(min_size=1, max_size=6), min_size=1, max_size=2, unique=True), value=JSON)
def test_any_document_name_an_author_writes_is_read_back_exactly(opa, keys, value):
    """Names come from the author's Rego and values from OPA: whatever they are, the policy's ref is
    found, and Gavel's one query reads exactly the document OPA holds there (and nothing beside it)."""
    ref = "".join(f"[{json.dumps(k)}]" for k in ["gavel_prop", *keys])
    source = f"package t\n\nallow if data{ref}[input.x] == 1\n"
    (path,) = ast.data_paths(ast.parse(source, "t.rego"), ("t",))
    assert path == ("gavel_prop", *keys)
    document = value
    for key in reversed(keys):
        document = {key: document}
    with opa_client(opa) as client:
        client.put_data("gavel_prop", {**document, "beside": "not read"} if keys[0] != "beside" else document)
        try:
            rows = client.query(outside._query((path,)))
        finally:
            client.put_data("gavel_prop", {})
    assert rows[0]["gavel_read"]["p0"] == [value]


def test_the_playground_decides_with_the_data_the_environment_s_opa_holds(make_user, scopes_in_opa, settings):
    settings.OPA_URL = scopes_in_opa
    policy = services.create_policy(name="agent_scopes", title="Agent scopes", source=SOURCE,
                                    author=make_user("policy_author"), message="First")

    def decide(tool):
        return playground.evaluate(policy, SOURCE, json.dumps({"agent": {"id": "helper", "scope": "support"},
                                                               "action": {"tool": tool}}))

    allowed, refused = decide("ticket.read"), decide("k8s.get")  # in OPA's support scope, and not
    assert (allowed.outcome, refused.outcome) == ("allow", "deny")
    assert refused.reasons == ["agent helper may not call k8s.get"]
    assert "Evaluated with data.acme.scopes as the dev environment's OPA holds it." == refused.data_note

    settings.OPA_URL = NOWHERE  # without the data the rule cannot tell: the page says why
    assert decide("k8s.get").data_note == ("Evaluated without the data it reads outside itself: Gavel could not "
                                           "reach the dev environment's OPA to read it.")
