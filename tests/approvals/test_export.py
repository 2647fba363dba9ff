"""An auditor exports the approvals queue as CSV: each held action, in words, with every review."""
import csv
import io

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from approvals import wording
from approvals import services as approvals
from approvals.models import HeldAction
from tests.factories import PolicyFactory

pytestmark = pytest.mark.django_db

HELD_RESULT = {"allow": False, "require_approval": True, "reasons": ["deletes in prod need a reviewer"],
               "effective_mode": "enforce"}


def hold(decision_id, requester, required=1):
    held, _ = approvals.hold(decision_id=decision_id, path="gavel_entry/budget/decision",
                             request={"user": {"id": requester}, "action": "delete", "environment": "prod"},
                             result=HELD_RESULT | {"approvals_required": required}, created_from="api")
    return held


def exported(client, **filters) -> list[dict]:
    response = client.get("/approvals/export.csv", filters)
    assert response.status_code == 200 and response["Content-Type"].startswith("text/csv")
    return list(csv.DictReader(io.StringIO(b"".join(response.streaming_content).decode())))


def test_each_held_action_is_a_row_with_its_reviews_in_the_order_cast(client, make_user):
    policy = PolicyFactory(name="budget")
    two_needed = hold("d-two", "dana", required=2)
    HeldAction.objects.filter(pk=two_needed.pk).update(policy=policy)
    approvals.review(two_needed, reviewer=make_user("reviewer", username="rita"), approve=True, comment="ok")
    approvals.review(two_needed, reviewer=make_user("reviewer", username="sam"), approve=False, comment="no")
    waiting = hold("d-waiting", "erin")  # no policy known, no review yet
    client.force_login(make_user("auditor"))

    rows = exported(client)

    assert list(rows[0]) == wording.EXPORT_HEADER
    assert [row["decision_id"] for row in rows] == ["d-two", "d-waiting"]  # oldest first
    decided, pending = rows
    assert (decided["status"], decided["policy"], decided["approvals"], decided["approvals_required"]) == (
        "rejected", "budget", "1", "2")
    assert decided["reviews"] == "rita approved: ok; sam rejected: no"
    assert decided["request"] == "dana wants to delete in prod"
    assert decided["reasons"] == "deletes in prod need a reviewer" and decided["decided_at"]
    assert (pending["status"], pending["policy"], pending["approvals"], pending["reviews"]) == (
        "pending", "", "0", "")
    assert pending["held_at"] == waiting.created_at.isoformat() and pending["decided_at"] == ""


def test_a_long_queue_is_read_in_chunks_with_a_query_for_each_chunks_reviews(client, make_user, monkeypatch):
    monkeypatch.setattr(wording, "EXPORT_CHUNK", 3)
    reviewer = make_user("reviewer", username="rita")
    for n in range(7):
        held = hold(f"d-{n}", f"user{n}")
        approvals.review(held, reviewer=reviewer, approve=True, comment=f"fine {n}")
    client.force_login(make_user("auditor"))

    with CaptureQueriesContext(connection) as queries:
        rows = exported(client, status="approved")

    assert [(row["decision_id"], row["reviews"]) for row in rows] == [
        (f"d-{n}", f"rita approved: fine {n}") for n in range(7)]
    reads_of_votes = [q for q in queries.captured_queries if '"audit_approvalvote"' in q["sql"]]
    assert len(reads_of_votes) == 3  # chunks of 3, 3 and 1: never one per held action
