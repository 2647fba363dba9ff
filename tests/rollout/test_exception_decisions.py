"""Deciding on exceptions: approve or reject with a comment, confirm before approving or revoking,
revoke with a reason and who revoked; the page and the API call the same functions."""
from datetime import timedelta

import pytest
from django.core.exceptions import PermissionDenied, ValidationError
from django.utils import timezone
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from fleet.models import Environment
from rollout import exceptions as policy_exceptions
from rollout.models import PolicyException
from tests.factories import PolicyFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def requested(make_user):
    author = make_user("policy_author", username="ann")
    return policy_exceptions.request_exception(
        policy=PolicyFactory(name="budget"), environment=Environment.objects.default(),
        match=[{"field": "user.id", "value": "dana"}], justification="month end", ticket="SEC-5",
        expires_at=timezone.now() + timedelta(days=3), requested_by=author)


def test_approving_and_rejecting_need_a_comment_and_someone_else(make_user, requested):
    admin = make_user("security_admin")
    with pytest.raises(ValidationError, match="comment"):
        policy_exceptions.approve_exception(requested, approved_by=admin, comment="  ")
    with pytest.raises(ValidationError, match="comment"):
        policy_exceptions.reject_exception(requested, rejected_by=admin, comment="")
    with pytest.raises(PermissionDenied, match="security admin"):
        policy_exceptions.reject_exception(requested, rejected_by=requested.requested_by, comment="no")
    rejected = policy_exceptions.reject_exception(requested, rejected_by=admin, comment="Use the staging budget")
    assert (rejected.status, rejected.rejected_by, rejected.decision_comment) == (
        "rejected", admin, "Use the staging budget")
    assert list(PolicyException.objects.rejected()) == [rejected] and not PolicyException.objects.pending()
    with pytest.raises(ValidationError, match="rejected, not pending"):
        policy_exceptions.approve_exception(requested, approved_by=admin, comment="changed my mind")


def test_an_authors_request_waits_for_a_security_admin_and_says_so(client, make_user):
    PolicyFactory(name="budget")
    client.force_login(make_user("policy_author"))
    response = client.post("/exceptions/new/", {
        "policy": "budget", "environment": Environment.objects.default().name, "match": "user.id = dana",
        "justification": "month end", "ticket": "SEC-5",
        "expires_at": (timezone.now() + timedelta(days=3)).strftime("%Y-%m-%dT%H:%M")}, follow=True)
    page = response.content.decode()
    assert "once a security admin approves it" in page and "another" not in page


def test_approve_and_revoke_ask_for_confirmation_on_the_page(client, make_user, requested):
    admin = make_user("security_admin", username="sam")
    client.force_login(admin)
    url = f"/exceptions/{requested.pk}"
    refused = client.post(f"{url}/approve/", {"comment": ""}, follow=True)
    assert "A comment on the approval is required." in refused.content.decode()
    confirm = client.post(f"{url}/approve/", {"comment": "Ticket <b>checked</b>"})
    assert confirm.status_code == 200 and 'data-testid="confirm-approve"' in confirm.content.decode()
    assert "Ticket &lt;b&gt;checked&lt;/b&gt;" in confirm.content.decode()
    requested.refresh_from_db()
    assert requested.status == "pending"  # nothing happens before the confirmation

    client.post(f"{url}/approve/", {"comment": "Ticket checked", "confirmed": "yes"})
    requested.refresh_from_db()
    assert (requested.status, requested.approved_by, requested.decision_comment) == ("active", admin, "Ticket checked")

    assert 'data-testid="confirm-revoke"' in client.post(f"{url}/revoke/", {"reason": "done early"}).content.decode()
    client.post(f"{url}/revoke/", {"reason": "done early", "confirmed": "yes"})
    requested.refresh_from_db()
    assert (requested.status, requested.revoked_by, requested.revoke_reason) == ("revoked", admin, "done early")
    detail = client.get(f"{url}/").content.decode()
    assert "sam" in detail and "done early" in detail
    assert list(PolicyException.objects.revoked()) == [requested] and not PolicyException.objects.expired()


def test_the_api_rejects_and_revokes_through_the_same_rules(make_user, requested):
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Token {Token.objects.create(user=make_user('security_admin')).key}")
    base = f"/api/v1/exceptions/{requested.pk}"
    assert api.post(f"{base}/approve/", {}, format="json").status_code == 400
    assert api.post(f"{base}/approve/", {"comment": "ok"}, format="json").data["status"] == "active"
    assert api.post(f"{base}/reject/", {"comment": "no"}, format="json").status_code == 400  # not pending
    assert api.post(f"{base}/revoke/", {}, format="json").status_code == 400
    revoked = api.post(f"{base}/revoke/", {"reason": "incident over"}, format="json")
    assert revoked.status_code == 200
    assert (revoked.data["status"], revoked.data["revoke_reason"]) == ("revoked", "incident over")
    assert revoked.data["revoked_by"] and revoked.data["decision_comment"] == "ok"
