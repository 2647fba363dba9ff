"""The approval queue: held actions created once, reviewed by someone else, expiring,
and the enforcement point learning the outcome."""
import gzip
import json
import threading
import time
import uuid
from datetime import timedelta

import pytest
from django.conf import settings
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from approvals import expiry
from approvals import services as approvals
from approvals.models import HeldAction
from approvals.views import QUEUE_PAGE
from approvals.wording import describe
from audit.ingest import store_batch
from core import store
from core.models import LogBatch, Outcome
from tests.factories import DecisionFactory, PolicyFactory

pytestmark = pytest.mark.django_db

HELD_RESULT = {"allow": False, "require_approval": True, "reasons": ["deletes in prod need a reviewer"],
               "policy": "budget", "policy_version": 1, "effective_mode": "enforce"}


def held_event(decision_id, requester="dana"):
    return {"decision_id": decision_id, "timestamp": "2026-11-27T08:00:00Z", "path": "gavel_entry/budget/decision",
            "input": {"user": {"id": requester}, "action": "delete", "tool": "db.drop", "environment": "prod"},
            "result": HELD_RESULT}


def ship(client, events):
    response = client.post("/api/v1/opa/logs", data=gzip.compress(json.dumps(events).encode()),
                           content_type="application/json", HTTP_AUTHORIZATION=f"Bearer {settings.GAVEL_OPA_TOKEN}")
    assert response.status_code == 204
    store_batch(LogBatch.objects.latest("pk").pk)


def api_as(user):
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {Token.objects.create(user=user).key}")
    return client


@pytest.fixture
def pep(make_user):
    return api_as(make_user("enforcement_point"))


def hold_via_api(pep, decision_id, requester="dana"):
    event = held_event(decision_id, requester)
    return pep.post("/api/v1/approvals", {"decision_id": decision_id, "path": event["path"],
                                          "input": event["input"], "result": HELD_RESULT}, format="json")


def test_log_first_then_api_holds_the_action_once(client, pep):
    decision_id = str(uuid.uuid4())
    ship(client, [held_event(decision_id)])
    held = HeldAction.objects.get()
    assert (held.created_from, held.logged_decision.decision_id) == ("decision log", decision_id)
    assert held.reasons == ["deletes in prod need a reviewer"] and held.requester == "dana"

    response = hold_via_api(pep, decision_id)
    assert response.status_code == 200 and response.data["status"] == "pending"
    assert HeldAction.objects.count() == 1


def test_api_first_then_log_links_the_same_action(client, pep):
    decision_id = str(uuid.uuid4())
    created = hold_via_api(pep, decision_id)
    assert created.status_code == 201 and created.data["created_from"] == "api"
    assert created.data["request"] == "dana wants to delete with db.drop in prod"

    ship(client, [held_event(decision_id)])
    held = HeldAction.objects.get()
    assert held.created_from == "api" and held.logged_decision is not None


def test_a_batch_holds_each_of_its_actions_once_together(client, pep):
    """A batch's held actions are created together; one an enforcement point submitted first is
    linked, not held twice. Holding ten costs no more queries than holding one."""
    first, *others = [str(uuid.uuid4()) for _ in range(10)]
    assert hold_via_api(pep, first).status_code == 201
    ship(client, [held_event(first, "erin"), *(held_event(d, f"user-{n}") for n, d in enumerate(others))])
    assert HeldAction.objects.count() == 10
    api_first = HeldAction.objects.get(decision_id=first)
    assert api_first.created_from == "api" and api_first.logged_decision.decision_id == first
    for held in HeldAction.objects.exclude(decision_id=first):
        assert held.created_from == "decision log" and held.logged_decision.decision_id == held.decision_id
        assert held.requester.startswith("user-") and held.reasons == ["deletes in prod need a reviewer"]
        assert list(held.events.values_list("kind", "detail")) == [("created", "from the decision log")]

    def queries_to_hold(count):
        events = [held_event(str(uuid.uuid4())) for _ in range(count)]
        with CaptureQueriesContext(connection) as captured:
            ship(client, events)
        return len(captured.captured_queries)

    assert queries_to_hold(10) == queries_to_hold(1)


def test_an_action_submitted_while_its_batch_is_stored_is_held_once(client, pep, monkeypatch):
    """The enforcement point submits between the batch's look for held actions and its INSERT:
    the INSERT fails as a whole and each action is held on its own, the submitted one linked."""
    submitted, logged = str(uuid.uuid4()), str(uuid.uuid4())
    assert hold_via_api(pep, submitted).status_code == 201
    monkeypatch.setattr(approvals, "already_held", lambda ids: set())  # as if looked before it arrived
    ship(client, [held_event(submitted), held_event(logged)])
    assert HeldAction.objects.get(decision_id=submitted).created_from == "api"
    assert HeldAction.objects.get(decision_id=submitted).logged_decision.decision_id == submitted
    assert HeldAction.objects.get(decision_id=logged).events.count() == 1


def test_a_retry_in_the_same_batch_as_its_held_decision_consumes_the_approval(make_user):
    """The enforcement point submitted the action, a reviewer approved it, and OPA uploads the held
    decision's log and the allowed retry together: the log is linked before the retry is checked
    against it."""
    policy, decision_id = PolicyFactory(name="budget"), str(uuid.uuid4())
    request = held_event(decision_id)["input"]
    held, _ = approvals.hold(decision_id=decision_id, path="gavel_entry/budget/decision", request=request,
                             result=HELD_RESULT, created_from="api", policy=policy)
    approvals.review(held, reviewer=make_user("reviewer"), approve=True, comment="a copy of the table")
    logged = DecisionFactory.build(decision_id=decision_id, policy=policy, input=request, environment="test",
                                   outcome=Outcome.REQUIRE_APPROVAL, result=HELD_RESULT)
    retry = DecisionFactory.build(policy=policy, input=request | {"gavel_approval": decision_id},
                                  environment="test", approval_ref=decision_id, timestamp=timezone.now())
    store.insert([logged, retry])
    held.refresh_from_db()
    assert held.logged_decision.decision_id == decision_id and held.consumed_by_decision == retry.decision_id


def test_the_api_refuses_a_decision_that_needs_no_approval(pep):
    response = pep.post("/api/v1/approvals", {"decision_id": "x", "path": "p", "input": {},
                                              "result": {"allow": True}}, format="json")
    assert response.status_code == 400 and "does not require approval" in str(response.data)
    assert not HeldAction.objects.exists()


def hold(decision_id="d-1", requester="dana", required=1):
    held, _ = approvals.hold(decision_id=decision_id, path="gavel_entry/budget/decision",
                             request={"user": {"id": requester}, "action": "delete"},
                             result=HELD_RESULT | {"approvals_required": required}, created_from="api")
    return held


def test_nobody_approves_their_own_request(make_user):
    dana = make_user("reviewer", username="dana")
    with pytest.raises(PermissionDenied, match="own request"):
        approvals.review(hold(requester="dana"), reviewer=dana, approve=True, comment="looks fine to me")
    assert HeldAction.objects.get().status == "pending"


def test_only_reviewers_review_and_always_with_a_comment(make_user):
    held = hold()
    with pytest.raises(PermissionDenied):
        approvals.review(held, reviewer=make_user("auditor"), approve=True, comment="ok")
    with pytest.raises(ValidationError, match="comment"):
        approvals.review(held, reviewer=make_user("reviewer"), approve=True, comment="  ")


def test_two_person_approval_waits_for_the_second(make_user):
    held = hold(required=2)
    first, second = make_user("reviewer"), make_user("security_admin")
    assert approvals.review(held, reviewer=first, approve=True, comment="fine").status == "pending"
    with pytest.raises(ValidationError, match="already reviewed"):
        approvals.review(held, reviewer=first, approve=True, comment="really fine")
    decided = approvals.review(held, reviewer=second, approve=True, comment="agreed")
    assert decided.status == "approved" and decided.valid_until > timezone.now()
    kinds = list(decided.events.values_list("kind", flat=True))
    assert kinds == ["created", "voted", "voted", "approved"]


def test_one_rejection_decides(make_user):
    held = approvals.review(hold(required=2), reviewer=make_user("reviewer"), approve=False, comment="no")
    assert held.status == "rejected"


def test_an_undecided_action_expires_as_rejected_and_the_queue_says_so(client, make_user):
    held = hold()
    HeldAction.objects.filter(pk=held.pk).update(expires_at=timezone.now() - timedelta(seconds=1))
    assert expiry.sweep() == (1, 0)
    held.refresh_from_db()
    assert held.status == "expired"
    client.force_login(make_user("reviewer"))
    assert "Expired (rejected)" in client.get("/approvals/", {"status": "expired"}).content.decode()
    with pytest.raises(ValidationError, match="expired"):
        approvals.review(held, reviewer=make_user("reviewer"), approve=True, comment="late")


def test_half_the_time_limit_escalates_once(make_user):
    held = hold()
    HeldAction.objects.filter(pk=held.pk).update(created_at=timezone.now() - timedelta(minutes=70))  # 70 of 130 minutes gone
    assert expiry.sweep() == (0, 1)
    assert expiry.sweep() == (0, 0)
    assert HeldAction.objects.get().escalated_at is not None


@pytest.mark.django_db(transaction=True)
def test_long_polling_answers_as_soon_as_a_reviewer_decides(pep, make_user):
    held = hold()
    reviewer = make_user("reviewer")
    threading.Timer(1.0, lambda: approvals.review(held, reviewer=reviewer, approve=True, comment="ok")).start()
    started = time.monotonic()
    response = pep.get(f"/api/v1/approvals/{held.decision_id}", {"wait": 20})
    assert response.data["status"] == "approved"
    assert time.monotonic() - started < 10


def test_the_queue_puts_risky_and_old_first(client, make_user):
    low = hold("d-low")
    HeldAction.objects.filter(pk=low.pk).update(risk=1)
    high = hold("d-high")
    HeldAction.objects.filter(pk=high.pk).update(risk=5)
    client.force_login(make_user("reviewer"))
    page = client.get("/approvals/")
    assert [h.decision_id for h in page.context["items"]] == ["d-high", "d-low"]


def test_the_decided_tabs_put_the_latest_decisions_first_and_page_through_each_once(client, make_user):
    held = [hold(f"d-{n}") for n in range(QUEUE_PAGE + 5)]
    decided = timezone.now() - timedelta(hours=1)
    # Decided in an order of their own; the first ten in the same instant, as a sweep expires many
    # at once, across the pages' edge: the id orders those.
    for n in (7, 3, 9, 0, 5, *range(QUEUE_PAGE + 4, 9, -1), 1, 8, 2, 6, 4):
        HeldAction.objects.filter(pk=held[n].pk).update(status="approved",
                                                        decided_at=decided + timedelta(minutes=max(n, 9)))
    client.force_login(make_user("reviewer"))
    pages = [client.get("/approvals/", {"status": "approved", "page": number}).context["items"]
             for number in (1, 2)]
    shown = [item.decision_id for page in pages for item in page]
    assert shown == [f"d-{n}" for n in reversed(range(QUEUE_PAGE + 5))]


def test_only_the_queue_offers_a_held_action_for_bulk_review(client, make_user):
    """The bulk review form is the queue's: a held action's own page has no box to tick for it."""
    held = hold()
    client.force_login(make_user("reviewer"))
    assert 'data-testid="bulk-pick"' in client.get("/approvals/").content.decode()
    page = client.get(f"/approvals/{held.decision_id}/").content.decode()
    assert 'data-testid="held-action"' in page and 'data-testid="bulk-pick"' not in page


def test_reviewing_on_the_page_with_htmx(client, make_user):
    held = hold()
    client.force_login(make_user("reviewer"))
    response = client.post(f"/approvals/{held.decision_id}/review/", {"verdict": "approve", "comment": "ok"},
                           HTTP_HX_REQUEST="true")
    assert "Approved" in response.content.decode() and "<form" not in response.content.decode()
    dana = make_user("reviewer", username="dana")
    client.force_login(dana)
    other = hold("d-2", requester="dana")
    refused = client.post(f"/approvals/{other.decision_id}/review/", {"verdict": "approve", "comment": "me"},
                          HTTP_HX_REQUEST="true")
    assert "nobody approves their own request" in refused.content.decode()


def test_inputs_are_escaped_in_the_queue(client, make_user):
    approvals.hold(decision_id="d-x", path="p", request={"user": {"id": "<script>x()</script>"}, "tool": "<b>t</b>"},
                   result=HELD_RESULT | {"reasons": ["<img src=x onerror=alert(1)>"]}, created_from="api")
    client.force_login(make_user("reviewer"))
    body = client.get("/approvals/").content.decode()
    assert "<script>x()" not in body and "<img src=x" not in body and "<b>t</b>" not in body


@pytest.mark.parametrize("request_, words", [
    ({"user": {"id": "ci-bot"}, "action": "deploy", "service": "checkout", "environment": "prod"},
     "ci-bot wants to deploy checkout in prod"),
    ({"user": {"id": "u-128"}, "agent": {"id": "devops-copilot"}, "action": "delete", "tool": "k8s.delete",
      "resource": "k8s/payments-api", "environment": "prod"},
     "devops-copilot (agent) for u-128 wants to delete k8s/payments-api with k8s.delete in prod"),
    ({"user": {"id": "u-7"}, "agent": {"id": "support-bot"}, "action": "delete", "tool": "ticket.delete",
      "resource": "helpdesk/tickets", "args": {"ticket_id": "T-39001"}, "environment": "prod"},
     "support-bot (agent) for u-7 wants to delete ticket T-39001 (helpdesk/tickets) with ticket.delete in prod"),
    ({"agent": {"id": "devops-copilot"}, "action": "delete", "tool": "k8s.delete", "resource": "k8s/payments-api",
      "args": {"kind": "pod", "name": "payments-api-7f9c"}},
     "devops-copilot (agent) for someone wants to delete pod payments-api-7f9c (k8s/payments-api) with k8s.delete"),
    ({"requested_by": "ci-pipeline", "action": "delete", "resource_type": "queue", "spec": {"name": "Old"}},
     "ci-pipeline wants to delete queue Old"),
    ({"user": "dana", "tool": "kb.search"}, "dana wants to use kb.search"),
    ("not an object", "a request whose input is not an object"),
])
def test_requests_read_as_plain_words(request_, words):
    assert describe(request_) == words


def test_a_value_with_bidi_controls_cannot_reorder_the_sentence():
    """U+202E (right-to-left override) in a user id would show the rest of the sentence reversed
    to the reviewer; the id is isolated (U+2068 ... U+2069) so the override ends with it."""
    words = describe({"user": {"id": "\u202eevil"}, "action": "delete", "environment": "prod"})
    assert words == "\u2068\u202eevil\u2069 wants to delete in prod"


def test_approvals_are_searchable_and_exported_with_formulas_neutralised(client, make_user):
    import csv
    import io

    risky = hold("d-risky", requester="=HYPERLINK(\"http://evil\")")
    approvals.review(risky, reviewer=make_user("reviewer"), approve=False, comment="+not a formula")
    hold("d-other", requester="erin")
    client.force_login(make_user("auditor"))

    page = client.get("/approvals/", {"status": "rejected", "requester": risky.requester})
    assert [h.decision_id for h in page.context["items"]] == ["d-risky"]

    response = client.get("/approvals/export.csv", {"status": "rejected"})
    rows = list(csv.reader(io.StringIO(b"".join(response.streaming_content).decode())))
    assert rows[0][:3] == ["decision_id", "status", "policy"]
    assert [r[0] for r in rows[1:]] == ["d-risky"]
    assert rows[1][4] == "'=HYPERLINK(\"http://evil\")"  # a spreadsheet shows it, never runs it
    assert "rejected: +not a formula" in rows[1][9]

    client.force_login(make_user("reviewer"))  # reviewers work the queue; auditors export it
    assert client.get("/approvals/export.csv").status_code == 403
