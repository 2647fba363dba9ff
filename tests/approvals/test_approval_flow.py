"""The whole approval flow against the real OPA, Celery and Gavel's web server: the
enforcement-point client holds an action, a reviewer approves, OPA allows the retry once."""
import threading

import pytest
from rest_framework.authtoken.models import Token

from approvals import services as approvals
from approvals.models import HeldAction
from approvals.pep_client import EnforcementPoint
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
