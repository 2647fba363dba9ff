"""The whole loop on real services: an author's policy is published to OPA through the API
(the author asks, a security admin approves), OPA decides, ships its decision log to Gavel, the worker stores it, and the decision shows
up in the API and on the audit trail."""
import pytest
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from core.models import Decision, Outcome
from core.opa.client import opa_client
from tests.support import wait_until

pytestmark = pytest.mark.django_db(transaction=True)

SOURCE = """package gavel.tool_access

default allow := false

blocked_users := {"mallory", "suspended-7"}

deny contains "user is blocked" if input.user in blocked_users

deny contains sprintf("token budget %d is over 10000", [input.tokens]) if input.tokens > 10000

allow if count(deny) == 0

decision := {"allow": allow, "reasons": sort(deny)}
"""


def api_for(user) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {Token.objects.create(user=user).key}")
    return client


def test_publish_decide_ship_store_and_find(opa, celery_worker, live_server, make_user, client):
    author = api_for(make_user("policy_author"))
    created = author.post("/api/v1/policies/", {
        "name": "tool_access", "title": "Tool access", "source": SOURCE, "message": "first cut"}, format="json")
    assert created.status_code == 201, created.content
    assert created.data["package"] == "gavel.tool_access"

    requested = author.post("/api/v1/policies/tool_access/versions/1/publish/", {"reason": "first release"},
                            format="json")
    assert requested.status_code == 201, requested.content
    assert requested.data["status"] == "pending" and requested.data["publication"] is None

    admin = api_for(make_user("security_admin"))
    approved = admin.post(f"/api/v1/publish-requests/{requested.data['id']}/approve/", {"reason": "reviewed"},
                          format="json")
    assert approved.status_code == 202, approved.content
    wait_until(lambda: author.get(f"/api/v1/publications/{approved.data['publication']}/").data["status"] == "ok",
               message="the publication to be confirmed")

    with opa_client() as opa:
        answer = opa.decide("gavel/tool_access/decision", {"user": "mallory", "tokens": 25000})
    assert answer["result"]["allow"] is False
    decision_id = answer["decision_id"]

    stored = wait_until(lambda: Decision.objects.filter(decision_id=decision_id).first(), timeout=30,
                        message="OPA to ship the decision log and the worker to store it")
    assert stored.outcome == Outcome.DENY
    assert stored.reasons == ["token budget 25000 is over 10000", "user is blocked"]
    assert stored.policy.name == "tool_access" and stored.version.number == 1
    assert stored.labels["instance"] == "pytest-opa"

    auditor = make_user("auditor")
    found = api_for(auditor).get("/api/v1/decisions/", {"outcome": "deny", "q": "budget"})
    assert [d["decision_id"] for d in found.data["results"]] == [decision_id]
    assert found.data["results"][0]["version"] == 1

    client.force_login(auditor)
    page = client.get("/audit/", {"path": "gavel/tool_access", "q": "blocked"})
    assert page.status_code == 200
    assert decision_id in page.content.decode()


def test_entrypoint_decisions_record_mode_version_and_exception(opa, celery_worker, live_server, make_user):
    """Through the entrypoint, the decision log itself says how the decision came about."""
    from datetime import timedelta

    from django.utils import timezone

    from fleet.models import Environment
    from policies import services
    from policies.models import Publication
    from rollout import canary
    from rollout import exceptions as policy_exceptions
    from rollout import services as rollout_services
    from rollout.models import Mode
    from tests.factories import PolicyFactory

    admin, author = make_user("security_admin"), make_user("policy_author")
    policy = PolicyFactory(name="tool_access", source=SOURCE, author=author)
    publication = services.request_publication(policy.latest_version, requested_by=admin)
    wait_until(lambda: Publication.objects.get(pk=publication.pk).status == "ok", message="the publication")
    environment = Environment.objects.default()
    rollout_services.change_rollout(policy, environment, canary.Rollout(mode=Mode.DRY_RUN, enforce_users=("dana",), user_field="user"),
                          changed_by=admin, reason="watch first")
    exception = policy_exceptions.request_exception(
        policy=policy, environment=environment, match=[{"field": "user", "value": "dana"}],
        reason_contains="token budget", justification="load test", ticket="SEC-9",
        expires_at=timezone.now() + timedelta(hours=1), requested_by=author,
    )
    policy_exceptions.approve_exception(exception, comment="Checked the ticket", approved_by=admin)
    # The worker pushes the runtime config after each change commits; wait until OPA has it.
    with opa_client() as opa:
        wait_until(lambda: opa.get_data("gavel_config/policies/tool_access/exceptions"), message="the config")
        dry = opa.decide("gavel_entry/tool_access/decision", {"user": "mallory", "tokens": 5})
        waived = opa.decide("gavel_entry/tool_access/decision", {"user": "dana", "tokens": 25000})

    dry_run = wait_until(lambda: Decision.objects.filter(decision_id=dry["decision_id"]).first(), timeout=30,
                         message="the dry-run decision log")
    assert (dry_run.outcome, dry_run.effective_mode) == (Outcome.WOULD_DENY, "dry-run")
    assert dry_run.reasons == ["user is blocked"]
    assert dry_run.version == policy.latest_version and dry_run.version_source == "reported"

    enforced = wait_until(lambda: Decision.objects.filter(decision_id=waived["decision_id"]).first(), timeout=30,
                          message="the waived decision log")
    assert (enforced.outcome, enforced.effective_mode) == (Outcome.ALLOW, "enforce")
    assert enforced.exception_ids == [exception.pk]
