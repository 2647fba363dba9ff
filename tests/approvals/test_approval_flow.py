"""The whole approval flow against the real OPA, Celery and Gavel's web server: the
enforcement-point client holds an action, a reviewer approves, OPA allows the retry once."""
import gzip
import json
import threading
import uuid

import pytest
from django.conf import settings
from django.utils import timezone
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from approvals import services as approvals
from approvals.models import HeldAction, HeldActionEvent
from approvals.pep_client import EnforcementPoint
from core.models import Decision
from core.opa.client import opa_client
from policies import services
from policies.models import Publication
from tests.factories import PolicyFactory
from tests.support import stack, wait_until

pytestmark = pytest.mark.django_db(transaction=True)

DELETES = """package gavel.deletes

default allow := false

default require_approval := false

require_approval if input.action == "delete"

allow if input.action == "read"

reasons contains "deletes need a reviewer" if require_approval

decision := {"allow": allow, "require_approval": require_approval, "reasons": sort(reasons)}
"""
DELETE_REQUEST = {"user": {"id": "dana"}, "action": "delete", "table": "invoices"}
PATH = "gavel_entry/deletes/decision"


@pytest.fixture
def published(opa, celery_worker, make_user):
    policy = PolicyFactory(name="deletes", source=DELETES)
    publication = services.request_publication(policy.latest_version, requested_by=make_user("security_admin"))
    wait_until(lambda: Publication.objects.get(pk=publication.pk).status == "ok", message="the publication")
    return policy


@pytest.fixture
def client_for(live_server, opa, make_user):
    token = Token.objects.create(user=make_user("enforcement_point")).key
    return lambda **kwargs: EnforcementPoint(opa, live_server.url, token, **kwargs)


def test_approved_retry_is_allowed_once_by_opa(published, client_for, make_user):
    pep = client_for()
    first = pep.decide(PATH, DELETE_REQUEST, wait_for_approval=False)
    assert first.status == "held" and first.reasons == ["deletes need a reviewer"]
    held = HeldAction.objects.get(decision_id=first.decision_id)
    approvals.review(held, reviewer=make_user("reviewer"), approve=True, comment="invoices table is a copy")

    retry_input = DELETE_REQUEST | {"gavel_approval": first.decision_id}
    with opa_client() as opa:
        wait_until(lambda: opa.get_data("gavel_approvals/deletes"), message="the approval to reach OPA")
        allowed = opa.decide(PATH, retry_input)
    assert allowed["result"]["allow"] is True and allowed["result"]["approval_applied"] == first.decision_id

    # Its decision log uses the approval up, and Gavel takes it back out of OPA.
    wait_until(lambda: HeldAction.objects.get(pk=held.pk).consumed_at, timeout=30, message="the retry's log")
    assert HeldAction.objects.get(pk=held.pk).consumed_by_decision == allowed["decision_id"]
    with opa_client() as opa:
        wait_until(lambda: not opa.get_data("gavel_approvals/deletes"), message="the approval to leave OPA")
        again = opa.decide(PATH, retry_input)["result"]
    assert again["allow"] is False and again["require_approval"] is True


def test_the_approval_covers_only_the_same_request(published, client_for, make_user):
    first = client_for().decide(PATH, DELETE_REQUEST, wait_for_approval=False)
    approvals.review(HeldAction.objects.get(decision_id=first.decision_id), reviewer=make_user("reviewer"),
                     approve=True, comment="ok")
    with opa_client() as opa:
        wait_until(lambda: opa.get_data("gavel_approvals/deletes"), message="the approval to reach OPA")
        other_table = opa.decide(PATH, DELETE_REQUEST | {"table": "customers", "gavel_approval": first.decision_id})
    assert other_table["result"]["require_approval"] is True


@pytest.mark.parametrize("approve, comment, allowed, status", [
    (True, "go ahead", True, "approved"),
    (False, "not during quarter close", False, "rejected"),
])
def test_the_waiting_client_learns_the_reviewers_decision(published, client_for, make_user,
                                                          approve, comment, allowed, status):
    pep = client_for(approval_wait=30, poll_seconds=5)
    outcome = {}
    waiting = threading.Thread(target=lambda: outcome.setdefault("verdict", pep.decide(PATH, DELETE_REQUEST)))
    waiting.start()
    held = wait_until(lambda: HeldAction.objects.filter(status="pending").first(), message="the held action")
    approvals.review(held, reviewer=make_user("reviewer"), approve=approve, comment=comment)
    waiting.join(timeout=40)
    assert (outcome["verdict"].allowed, outcome["verdict"].status) == (allowed, status)


def test_fail_open_and_fail_closed_when_opa_is_stopped(tmp_path):
    port = stack.free_port()
    proc = stack.start_opa(tmp_path, port, "http://127.0.0.1:9/none", "x", {})
    with opa_client(f"http://127.0.0.1:{port}") as opa:
        opa.put_policy("gavel/reads", "package gavel.reads\n\ndecision := {\"allow\": true}\n")
    url = f"http://127.0.0.1:{port}"
    assert EnforcementPoint(url).decide("gavel/reads/decision", {}).allowed  # OPA up: its answer
    stack.stop_process(proc, "OPA")

    closed = EnforcementPoint(url, fail_open=False, timeout=0.5).decide("gavel/reads/decision", {})
    opened = EnforcementPoint(url, fail_open=True, timeout=0.5).decide("gavel/reads/decision", {})
    assert (closed.allowed, closed.status) == (False, "unreachable")
    assert (opened.allowed, opened.status) == (True, "unreachable")
    assert "failing closed" in closed.reasons[0] and "failing open" in opened.reasons[0]


def upload(client, event) -> None:
    """A decision-log batch as any uploader holding the bootstrap token could send it."""
    body = gzip.compress(json.dumps([event]).encode())
    response = client.post("/api/v1/opa/logs", data=body, content_type="application/json",
                           HTTP_AUTHORIZATION=f"Bearer {settings.GAVEL_OPA_TOKEN}")
    assert response.status_code == 204
    wait_until(lambda: Decision.objects.filter(decision_id=event["decision_id"]).exists(), message="the upload")


def claiming(approval_id, *, environment="test", path=PATH, request=DELETE_REQUEST):
    """A decision that says OPA applied `approval_id`, with a fresh decision id."""
    return {"decision_id": str(uuid.uuid4()), "timestamp": timezone.now().isoformat(), "path": path,
            "input": request | {"gavel_approval": approval_id},
            "result": {"allow": True, "require_approval": False, "reasons": [], "approval_applied": approval_id},
            "labels": {"environment": environment, "instance": "elsewhere"}}


def approved_in_opa(pep, make_user):
    first = pep.decide(PATH, DELETE_REQUEST, wait_for_approval=False)
    held = HeldAction.objects.get(decision_id=first.decision_id)
    # Its own decision log says where and for what the approval is granted.
    wait_until(lambda: HeldAction.objects.get(pk=held.pk).logged_decision_id, timeout=30, message="its log")
    approvals.review(held, reviewer=make_user("reviewer"), approve=True, comment="invoices table is a copy")
    with opa_client() as opa:
        wait_until(lambda: opa.get_data("gavel_approvals/deletes"), message="the approval to reach OPA")
    return held


@pytest.mark.parametrize("claim, refusal", [
    (dict(environment="prod"), "granted in environment 'test', not 'prod'"),
    (dict(path="gavel_entry/other/decision"), "granted for policy deletes"),
    (dict(request=DELETE_REQUEST | {"table": "customers"}), "input differs"),
])
def test_a_decision_from_elsewhere_consumes_no_approval(published, client_for, make_user, client, claim, refusal):
    held = approved_in_opa(client_for(), make_user)
    forged = claiming(held.decision_id, **claim)
    upload(client, forged)

    # Stored as a decision, but the approval is still unused and still in OPA.
    assert Decision.objects.get(decision_id=forged["decision_id"]).approval_ref == held.decision_id
    held.refresh_from_db()
    assert held.consumed_at is None
    with opa_client() as opa:
        assert [a["id"] for a in opa.get_data("gavel_approvals/deletes")] == [held.decision_id]
    step = held.events.get(kind=HeldActionEvent.Kind.REFUSED)
    assert forged["decision_id"] in step.detail and refusal in step.detail
    auditor = APIClient()
    auditor.force_authenticate(make_user("auditor"))
    activity = auditor.get("/api/v1/activity/", {"model": "held-action-step"}).json()["results"]
    details = [change["after"] for entry in activity for change in entry["changes"] if change["field"] == "detail"]
    assert step.detail in details

    # The retry it was granted for still gets through, and uses it up.
    with opa_client() as opa:
        allowed = opa.decide(PATH, DELETE_REQUEST | {"gavel_approval": held.decision_id})
    assert allowed["result"]["approval_applied"] == held.decision_id
    wait_until(lambda: HeldAction.objects.get(pk=held.pk).consumed_at, timeout=30, message="the retry's log")
    assert HeldAction.objects.get(pk=held.pk).consumed_by_decision == allowed["decision_id"]


def test_an_approval_is_consumed_once(published, client_for, make_user, client):
    held = approved_in_opa(client_for(), make_user)
    first, second = claiming(held.decision_id), claiming(held.decision_id)
    upload(client, first)
    upload(client, second)
    held.refresh_from_db()
    assert held.consumed_by_decision == first["decision_id"]
    refused = held.events.get(kind=HeldActionEvent.Kind.REFUSED)
    assert second["decision_id"] in refused.detail and f"already used by decision {first['decision_id']}" in refused.detail


def test_a_pending_action_is_not_consumed(published, client_for, make_user, client):
    first = client_for().decide(PATH, DELETE_REQUEST, wait_for_approval=False)
    wait_until(lambda: HeldAction.objects.get(decision_id=first.decision_id).logged_decision_id, timeout=30,
               message="its log")
    upload(client, claiming(first.decision_id))
    held = HeldAction.objects.get(decision_id=first.decision_id)
    assert held.consumed_at is None and held.status == HeldAction.Status.PENDING
    assert "not approved" in held.events.get(kind=HeldActionEvent.Kind.REFUSED).detail
