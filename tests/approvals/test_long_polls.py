"""Long polls for a held action's outcome: a short wait on the server with no database connection
held, Retry-After when still pending, a decision answered at once, and a per-user cap (429)."""
import threading
import time

import pytest
from django.db import connection, connections
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from approvals import services as approvals
from approvals import waiting
from tests.support import wait_until

pytestmark = pytest.mark.django_db(transaction=True)

HELD_RESULT = {"allow": False, "require_approval": True, "reasons": ["deletes need a reviewer"]}


def api_as(user):
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {Token.objects.create(user=user).key}")
    return client


def held(decision_id):
    return approvals.hold(decision_id=decision_id, path="gavel_entry/deletes/decision",
                          request={"user": {"id": "dana"}, "action": "delete"}, result=HELD_RESULT,
                          created_from="api")[0]


def poll_in_thread(client, decision_id, wait, into):
    def run():
        try:
            into.append(client.get(f"/api/v1/approvals/{decision_id}", {"wait": wait}))
        finally:
            connection.close()  # this thread's own connection
    thread = threading.Thread(target=run)
    thread.start()
    return thread


def test_a_pending_action_is_answered_after_a_short_wait_with_retry_after(settings, make_user):
    settings.GAVEL_APPROVAL_HOLD_SECONDS = 1
    action = held("d-short")
    started = time.monotonic()
    response = api_as(make_user("enforcement_point")).get(f"/api/v1/approvals/{action.decision_id}", {"wait": 60})
    assert response.status_code == 200 and response.data["status"] == "pending"
    assert response["Retry-After"] == "1"
    assert 1 <= time.monotonic() - started < 5


def test_a_decision_during_the_wait_is_answered_at_once(settings, make_user):
    settings.GAVEL_APPROVAL_HOLD_SECONDS = 20
    action, reviewer = held("d-woken"), make_user("reviewer")
    threading.Timer(1.0, lambda: approvals.review(action, reviewer=reviewer, approve=True, comment="ok")).start()
    started = time.monotonic()
    response = api_as(make_user("enforcement_point")).get(f"/api/v1/approvals/{action.decision_id}", {"wait": 30})
    assert response.data["status"] == "approved" and "Retry-After" not in response
    assert time.monotonic() - started < 6


def test_the_wait_holds_no_database_connection(settings, make_user):
    settings.GAVEL_APPROVAL_HOLD_SECONDS = 3
    action, client = held("d-no-connection"), api_as(make_user("enforcement_point"))
    seen = {}

    def poll():
        seen["connection"] = connections["default"]  # this thread's own, which the view below uses
        try:
            seen["answer"] = client.get(f"/api/v1/approvals/{action.decision_id}", {"wait": 30})
        finally:
            connection.close()

    thread = threading.Thread(target=poll)
    thread.start()
    time.sleep(1.5)  # the poll has read the action and is waiting
    assert seen["connection"].connection is None  # handed back for the wait
    thread.join(timeout=10)
    assert seen["answer"].data["status"] == "pending"  # and one taken again to read the outcome


def test_past_the_per_user_cap_a_wait_is_answered_429(settings, make_user):
    settings.GAVEL_APPROVAL_HOLD_SECONDS = 5
    settings.GAVEL_APPROVAL_MAX_WAITS_PER_USER = 2
    action = held("d-capped")
    busy_account = make_user("enforcement_point")
    busy, other = api_as(busy_account), api_as(make_user("enforcement_point"))
    answers = []
    threads = [poll_in_thread(busy, action.decision_id, 30, answers) for _ in range(2)]
    open_waits = waiting.WAITS_KEY.format(busy_account.pk)  # a loaded machine may start the threads late
    wait_until(lambda: int(waiting._redis().get(open_waits) or 0) == 2, timeout=10, message="both polls waiting")
    refused = busy.get(f"/api/v1/approvals/{action.decision_id}", {"wait": 30})
    assert refused.status_code == 429 and refused["Retry-After"] == "1"
    assert busy.get(f"/api/v1/approvals/{action.decision_id}").status_code == 200  # no wait: no cap
    assert other.get(f"/api/v1/approvals/{action.decision_id}", {"wait": 1}).status_code == 200
    for thread in threads:
        thread.join(timeout=10)
    assert [a.status_code for a in answers] == [200, 200]
    assert busy.get(f"/api/v1/approvals/{action.decision_id}", {"wait": 1}).status_code == 200  # slots freed
