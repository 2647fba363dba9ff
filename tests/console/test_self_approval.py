"""Nobody approves their own request, through the API and the page. Already covered elsewhere:
publish requests, page and API (tests/policies/test_review.py); exceptions, API
(tests/rollout/test_rollout_pages.py); held actions, page (tests/approvals/test_approvals.py).
Here: the two that were missing."""
from datetime import timedelta

import pytest
from django.utils import timezone
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from approvals import services as approvals
from approvals.models import HeldAction
from fleet.models import Environment
from rollout import exceptions as policy_exceptions
from rollout.models import PolicyException
from tests.factories import PolicyFactory

pytestmark = pytest.mark.django_db


def test_a_reviewer_cannot_review_their_own_held_action_through_the_api(make_user):
    dana = make_user("reviewer", username="dana")
    approvals.hold(decision_id="d-own", path="gavel_entry/budget/decision", request={"user": {"id": "dana"}},
                   result={"allow": False, "require_approval": True, "reasons": ["needs a reviewer"]},
                   created_from="api")
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Token {Token.objects.create(user=dana).key}")
    refused = api.post("/api/v1/approvals/d-own/review/", {"approve": True, "comment": "fine by me"}, format="json")
    assert refused.status_code == 403 and "own request" in refused.json()["detail"]
    assert HeldAction.objects.get().status == HeldAction.Status.PENDING


def test_a_security_admin_cannot_approve_their_own_exception_on_the_page(client, make_user):
    admin = make_user("security_admin")
    exception = policy_exceptions.request_exception(
        policy=PolicyFactory(name="budget"), environment=Environment.objects.default(),
        match=[{"field": "user.id", "value": "dana"}], justification="month end", ticket="SEC-2",
        expires_at=timezone.now() + timedelta(days=2), requested_by=admin)
    client.force_login(admin)
    assert "Approve</button>" not in client.get(f"/exceptions/{exception.pk}/").content.decode()
    response = client.post(f"/exceptions/{exception.pk}/approve/", {"comment": "looks fine", "confirmed": "yes"},
                           follow=True)
    assert "Nobody approves their own exception" in response.content.decode()
    exception.refresh_from_db()
    assert exception.approved_by is None and exception.status == PolicyException.Status.PENDING
