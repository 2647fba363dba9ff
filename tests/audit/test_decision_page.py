"""The decision page: input and result, the version that decided (linked), the exception or
approval involved, and the other decisions of the same user and of the same session."""
from datetime import timedelta

import pytest
from django.utils import timezone

from approvals import services as approvals
from core.models import Outcome
from fleet.models import Environment
from rollout import exceptions as policy_exceptions
from tests.factories import DecisionFactory, PolicyFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def auditor(client, make_user):
    client.force_login(make_user("auditor"))
    return client


def page_of(client, decision):
    response = client.get(f"/audit/{decision.decision_id}/")
    assert response.status_code == 200
    return response


def test_the_version_and_the_facts_link_onwards(auditor):
    policy = PolicyFactory(name="gateway")
    decision = DecisionFactory(policy=policy, version=policy.latest_version, environment="prod", instance="opa-eu-1",
                               input={"user": {"id": "dana"}, "agent": {"id": "copilot-7"}, "action": "sql.query"})
    body = page_of(auditor, decision).content.decode()
    assert 'href="/policies/gateway/v1/"' in body
    assert 'href="/audit/?user=dana"' in body and 'href="/audit/?agent=copilot-7"' in body
    assert 'href="/audit/?environment=prod"' in body and 'href="/audit/?action=sql.query"' in body


def test_the_exception_that_waived_a_denial_is_named_and_linked(auditor, make_user):
    policy = PolicyFactory(name="budget")
    exception = policy_exceptions.request_exception(
        policy=policy, environment=Environment.objects.default(), match=[{"field": "user.id", "value": "dana"}],
        justification="month-end close", ticket="FIN-42", expires_at=timezone.now() + timedelta(days=1),
        requested_by=make_user("security_admin"))
    decision = DecisionFactory(policy=policy, version=policy.latest_version, exception_ids=[exception.pk])
    body = page_of(auditor, decision).content.decode()
    assert f'href="/exceptions/{exception.pk}/"' in body
    assert "FIN-42" in body and "month-end close" in body


def test_the_approval_that_held_the_action_is_linked(auditor):
    decision = DecisionFactory(outcome=Outcome.REQUIRE_APPROVAL, reasons=["prod deletes need a reviewer"])
    approvals.hold(decision_id=decision.decision_id, path=decision.path, request=decision.input,
                   result={"allow": False, "require_approval": True}, created_from="decision log", decision=decision)
    retry = DecisionFactory(approval_ref=decision.decision_id)
    assert f'href="/approvals/{decision.decision_id}/"' in page_of(auditor, decision).content.decode()
    assert f'href="/approvals/{decision.decision_id}/"' in page_of(auditor, retry).content.decode()


def test_other_decisions_of_the_same_user(auditor):
    mine = [DecisionFactory(input={"user": {"id": "dana"}, "tool": "sql.query"}) for _ in range(3)]
    someone_else = DecisionFactory(input={"user": {"id": "erin"}})
    response = page_of(auditor, mine[0])
    assert response.context["same_user"] == mine[1:]
    assert someone_else.decision_id not in response.content.decode()


def test_other_decisions_of_the_same_session_at_a_configurable_path(auditor, settings):
    def turn(conversation, minutes_ago):
        return DecisionFactory(timestamp=timezone.now() - timedelta(minutes=minutes_ago),
                               input={"user": {"id": "dana"}, "context": {"conversation_id": conversation}})

    first, second, other = turn("conv-1", 3), turn("conv-1", 2), turn("conv-2", 1)
    long_ago = DecisionFactory(timestamp=timezone.now() - timedelta(days=3),
                               input={"context": {"conversation_id": "conv-1"}})
    response = page_of(auditor, first)
    assert response.context["session"] == ("context.conversation_id", "conv-1")
    assert response.context["same_session"] == [second]  # not conv-2, not outside the window
    assert other not in response.context["same_session"] and long_ago not in response.context["same_session"]

    settings.GAVEL_SESSION_FIELDS = ["ticket"]  # GAVEL_FIELD_SESSION=ticket
    response = page_of(auditor, first)
    assert response.context["session"] is None and response.context["same_session"] == []
    assert "The input names no session" in response.content.decode()


def test_hostile_facts_and_session_render_escaped(auditor):
    script = "<script>alert('x')</script>"
    decision = DecisionFactory(environment=script, input={"user": {"id": script}, "agent": script, "session_id": script})
    DecisionFactory(input={"user": {"id": script}, "session_id": script}, reasons=[script], outcome=Outcome.DENY)
    body = page_of(auditor, decision).content.decode()
    assert script not in body
    assert "&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt;" in body
    # In links the value is URL-encoded, never raw markup.
    assert "?user=%3Cscript%3Ealert%28%27x%27%29%3C/script%3E" in body
