"""Login is required everywhere; roles decide what each person may see and do."""
import pytest
from rest_framework.authtoken.models import Token

from tests.factories import DecisionFactory, PolicyFactory

pytestmark = pytest.mark.django_db

PAGES = ["/", "/policies/", "/policies/new/", "/audit/"]


@pytest.mark.parametrize("url", PAGES)
def test_pages_redirect_anonymous_visitors_to_login(client, url):
    response = client.get(url)
    assert response.status_code == 302 and response.url.startswith("/login/")


@pytest.mark.parametrize("url", ["/api/v1/policies/", "/api/v1/decisions/", "/api/v1/publications/"])
def test_api_refuses_anonymous_callers_without_redirecting(client, url):
    assert client.get(url).status_code in (401, 403)


@pytest.mark.parametrize(
    "role, can_read_decisions",
    [("auditor", True), ("security_admin", True), ("reviewer", True), ("policy_author", True),
     ("compliance_officer", False)],
)
def test_who_reads_the_audit_trail(client, make_user, role, can_read_decisions):
    decision = DecisionFactory()
    client.force_login(make_user(role))
    expected = 200 if can_read_decisions else 403
    assert client.get("/audit/").status_code == expected
    assert client.get(f"/audit/{decision.decision_id}/").status_code == expected


@pytest.mark.parametrize("role, allowed", [("policy_author", True), ("auditor", False), ("security_admin", False)])
def test_only_authors_write_policies(client, make_user, role, allowed):
    client.force_login(make_user(role))
    assert client.get("/policies/new/").status_code == (200 if allowed else 403)


@pytest.mark.parametrize("role, allowed", [("security_admin", True), ("policy_author", True), ("auditor", False),
                                           ("reviewer", False), ("compliance_officer", False)])
def test_who_may_ask_to_publish_through_the_api(make_user, role, allowed):
    from rest_framework.test import APIClient

    PolicyFactory(name="budget")
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Token {Token.objects.create(user=make_user(role)).key}")
    response = api.post("/api/v1/policies/budget/versions/1/publish/", {"reason": "ship it"}, format="json")
    assert response.status_code == (201 if allowed else 403)


def test_compile_error_through_the_api_names_the_line(make_user):
    from rest_framework.test import APIClient

    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Token {Token.objects.create(user=make_user('policy_author')).key}")
    response = api.post("/api/v1/policies/", {"name": "bad", "title": "Bad", "message": "x",
                                              "source": "package gavel.bad\n\nallow if {\n"}, format="json")
    assert response.status_code == 400
    assert response.json()["source"][0]["line"] == 4


def test_compile_error_on_the_page_is_shown_and_nothing_saved(client, make_user):
    from policies.models import Policy

    client.force_login(make_user("policy_author"))
    response = client.post("/policies/new/", {"name": "bad", "title": "Bad", "message": "first",
                                              "source": "package gavel.bad\n\nallow if input.x ==\n"})
    body = response.content.decode()
    assert response.status_code == 200
    assert "OPA could not compile this source" in body and "bad.rego, line " in body
    assert not Policy.objects.exists()


def test_the_openapi_schema_is_served(client, make_user):
    client.force_login(make_user("auditor"))
    response = client.get("/api/v1/schema/")
    assert response.status_code == 200
    assert b"/api/v1/decisions/" in response.content
