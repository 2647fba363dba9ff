"""The whole loop on real services: an author's policy is published to OPA through the API,
OPA decides, ships its decision log to Gavel, the worker stores it, and the decision shows
up in the API and on the audit trail."""
import pytest
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from audit.models import Decision, Outcome
from policies.opa import opa_client
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

    published = author.post("/api/v1/policies/tool_access/versions/1/publish/")
    assert published.status_code == 202, published.content
    wait_until(lambda: author.get(f"/api/v1/publications/{published.data['id']}/").data["status"] == "ok",
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
