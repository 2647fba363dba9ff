"""The explain view: a stored decision re-evaluated against the version that decided, in Gavel's
own sandboxed `opa eval` with its explanation on, loaded by htmx after the decision page."""
import pytest

from core.models import Outcome
from core.opa.client import opa_client
from tests.factories import DecisionFactory, PolicyFactory
from tests.support import decisions_served

pytestmark = pytest.mark.django_db

SCRIPT = "<script>alert('x')</script>"

GREETING = """package gavel.{name}

default allow := false

allow if input.user.role == "admin"

reasons contains msg if {{
	not allow
	msg := sprintf("%s may not do this", [input.user.name])
}}

decision := {{"allow": allow, "reasons": reasons}}
"""


@pytest.fixture
def auditor(client, make_user):
    client.force_login(make_user("auditor"))
    return client


def explain(client, decision):
    response = client.get(f"/audit/{decision.decision_id}/explain/", HTTP_HX_REQUEST="true")
    assert response.status_code == 200
    return response


def test_the_explanation_shows_the_rule_that_denied(auditor, opa):
    policy = PolicyFactory(name="gateway")
    decision = DecisionFactory(policy=policy, version=policy.latest_version, outcome=Outcome.DENY,
                               input={"user": {"role": "intern"}}, reasons=["only admins may do this"])
    response = explain(auditor, decision)
    explanation = response.context["explanation"]
    assert explanation.outcome == Outcome.DENY and explanation.reasons == ["only admins may do this"]
    assert explanation.agrees is True
    denying = [rule for rule in explanation.fired if rule.gives_reason]
    assert [(rule.name, rule.row, rule.source_line) for rule in denying] == [
        ("reasons", 7, 'reasons contains "only admins may do this" if not allow')]
    body = response.content.decode()
    assert "<html" not in body  # a partial for htmx to swap in
    assert "reasons contains &quot;only admins may do this&quot; if not allow" in body
    # The trace speaks of the policy's own package, not Gavel's scratch copy, which is gone again.
    assert "data.gavel.gateway.reasons" in body and "gavel_explain" not in body
    with opa_client(opa) as client:
        assert not [pid for pid in client.list_policy_ids() if pid.startswith("gavel_explain/")]


def test_an_allow_shows_the_rule_that_allowed(auditor, opa):
    policy = PolicyFactory(name="gateway")
    decision = DecisionFactory(policy=policy, version=policy.latest_version, input={"user": {"role": "admin"}})
    explanation = explain(auditor, decision).context["explanation"]
    assert explanation.outcome == Outcome.ALLOW and explanation.agrees is True
    assert ("allow", 5) in [(rule.name, rule.row) for rule in explanation.fired]
    assert not [rule for rule in explanation.fired if rule.name == "reasons"]


def test_masked_input_is_said_to_possibly_differ(auditor, opa):
    policy = PolicyFactory(name="gateway")
    decision = DecisionFactory(policy=policy, version=policy.latest_version, outcome=Outcome.ALLOW,
                               input={"user": {"role": "sha256:9f86d0"}}, masked=["user.role=hash"])
    response = explain(auditor, decision)
    assert response.context["explanation"].agrees is False  # the hash is no admin
    body = response.content.decode()
    assert "masked before it was stored" in body and "user.role=hash" in body


def test_a_decision_without_a_known_version_cannot_be_explained(auditor):
    decision = DecisionFactory()
    body = explain(auditor, decision).content.decode()
    assert "does not know which policy version" in body


def test_explain_needs_no_fleet_opa(auditor, settings):
    settings.OPA_URL = "http://127.0.0.1:9"  # nothing listens on the discard port
    policy = PolicyFactory(name="gateway")
    decision = DecisionFactory(policy=policy, version=policy.latest_version, input={"user": {"role": "admin"}})
    explanation = explain(auditor, decision).context["explanation"]
    assert explanation.outcome == Outcome.ALLOW and explanation.agrees is True


def test_the_decision_page_does_not_call_opa_until_asked(auditor, opa):
    policy = PolicyFactory(name="gateway")
    decision = DecisionFactory(policy=policy, version=policy.latest_version, input={"user": {"role": "admin"}})
    before = decisions_served(opa)
    body = auditor.get(f"/audit/{decision.decision_id}/").content.decode()
    assert decisions_served(opa) == before
    assert f'hx-get="/audit/{decision.decision_id}/explain/?row={decision.pk}"' in body
    # Without htmx the same explanation is a page of its own.
    page = auditor.get(f"/audit/{decision.decision_id}/explain/")
    assert "<html" in page.content.decode() and page.context["explanation"].outcome == Outcome.ALLOW
    # Nor then: authors' Rego is evaluated in Gavel's sandbox, never in the fleet's OPA.
    assert decisions_served(opa) == before


def test_hostile_input_renders_escaped_in_the_explanation(auditor, opa):
    policy = PolicyFactory(name="greeting", source=GREETING.format(name="greeting"))
    decision = DecisionFactory(policy=policy, version=policy.latest_version, outcome=Outcome.DENY,
                               input={"user": {"name": SCRIPT, "role": SCRIPT}}, reasons=[f"{SCRIPT} may not do this"])
    response = explain(auditor, decision)
    assert response.context["explanation"].reasons == [f"{SCRIPT} may not do this"]
    body = response.content.decode()
    assert SCRIPT not in body and "<script" not in body
    assert "&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt; may not do this" in body


TITLED = """package gavel.{name}

allowed_tools := {{"search", "read"}}

default allow := false

# METADATA
# title: Unknown tools are refused
deny contains sprintf("tool %s is not allowed", [input.tool]) if {{
	not input.tool in allowed_tools
}}

deny contains "suspended users may do nothing" if input.user.suspended

allow if count(deny) == 0
"""


def test_explain_names_the_deciding_rule_by_its_title_and_lists_only_rules_that_held(auditor, opa):
    policy = PolicyFactory(name="titled", source=TITLED.format(name="titled"))
    decision = DecisionFactory(policy=policy, version=policy.latest_version, outcome=Outcome.DENY,
                               input={"tool": "drop", "user": {}}, reasons=["tool drop is not allowed"])
    response = explain(auditor, decision)
    explanation = response.context["explanation"]
    # The constant (line 3), the default (5) and the deny that did not hold (13) are left out.
    assert [(rule.name, rule.row) for rule in explanation.fired] == [("deny", 9)]
    [deciding] = explanation.deciding
    assert deciding.title == "Unknown tools are refused"
    body = response.content.decode()
    assert 'data-testid="decided-by">Decided by <strong>Unknown tools are refused</strong>' in body
    assert body.count('class="gives-reason"') == 1
