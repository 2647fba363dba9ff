"""The summary pages, rendered by Django for a compliance officer."""
from pathlib import Path

import pytest

from core.models import Outcome
from policies import services
from tests.factories import DecisionFactory

pytestmark = pytest.mark.django_db

DEMO = Path("console/demo/policies/agent_gateway.rego").read_text()
HOSTILE = """package gavel.hostile

# METADATA
# title: <i>Sneaky</i> title
deny contains "<script>alert(1)</script>" if input.tool == "<b>drop</b>"
"""


@pytest.fixture
def gateway(make_user):
    return services.create_policy(name="agent_gateway", title="AI agent gateway", source=DEMO,
                                  author=make_user("policy_author", first_name="Ann", last_name="Author"),
                                  message="Initial version")


def test_compliance_officer_reads_the_demo_policy(client, make_user, gateway):
    DecisionFactory(policy=gateway, outcome=Outcome.DENY, reasons=["user u-107 is suspended"])
    DecisionFactory(policy=gateway, outcome=Outcome.ALLOW)
    client.force_login(make_user("compliance_officer"))
    response = client.get("/policies/agent_gateway/v1/summary/")
    assert response.status_code == 200
    html = response.content.decode()
    for heading in ("Denies when…", "Requires approval when…", "Allows when…", "Helper checks",
                    "Lists and limits defined in this policy", "Last 7 days", "How it is enforced now"):
        assert heading in html
    assert "Anything not explicitly allowed is denied." in html
    assert "50.0%" in html and "user u-107 is suspended" in html
    assert "1 time in the last 7 days" in html  # the suspended-users rule matched one reason
    assert "This request is denied: token budget 8001 exceeds the limit of 8000." in html
    assert "OPA disagrees" not in html and '<pre class="rego">' not in html  # nothing fell back to Rego
    assert "“input must be a JSON object”" in html


def test_print_view_is_a_standalone_page(client, make_user, gateway):
    client.force_login(make_user("compliance_officer", username="carla", first_name="Carla", last_name="Compliance"))
    response = client.get("/policies/agent_gateway/v1/summary/print/")
    html = response.content.decode()
    assert response.status_code == 200
    assert "Policy summary: AI agent gateway" in html
    assert 'class="topbar"' not in html
    assert "Denies when…" in html and gateway.latest_version.sha256 in html
    # People by their names, as on the evidence views, never by the login alone.
    author = gateway.latest_version.author
    assert f"UTC by {author.get_full_name()} ({author.username})" in html
    assert "UTC for Carla Compliance (carla)." in html


def test_diff_view_names_the_changed_limit(client, make_user, gateway):
    services.save_version(gateway, source=DEMO.replace("max_token_budget := 8000", "max_token_budget := 10000"),
                          author=make_user("policy_author"), message="Raise the budget")
    client.force_login(make_user("compliance_officer"))
    response = client.get("/policies/agent_gateway/v2/summary/diff/1/")
    html = response.content.decode()
    assert response.status_code == 200
    assert "the request&#x27;s token budget is more than 10,000 (was 8,000)" in html
    assert "Max token budget is now 10,000 (was 8,000)." in html
    page = client.get("/policies/agent_gateway/v2/summary/").content.decode()
    assert "/policies/agent_gateway/v2/summary/diff/1/" in page


def test_policy_text_is_escaped(client, make_user):
    services.create_policy(name="hostile", title="<b>Hostile</b>", source=HOSTILE, author=make_user("policy_author"),
                           message="<em>hi</em>")
    client.force_login(make_user("compliance_officer"))
    html = client.get("/policies/hostile/v1/summary/").content.decode()
    assert "<script>alert(1)</script>" not in html and "<i>Sneaky</i>" not in html and "<b>drop</b>" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "&lt;i&gt;Sneaky&lt;/i&gt; title" in html


def test_people_without_the_permission_are_refused(client, make_user, gateway):
    client.force_login(make_user())
    assert client.get("/policies/agent_gateway/v1/summary/").status_code == 403
    assert client.get("/policies/agent_gateway/v1/summary/print/").status_code == 403
    client.force_login(make_user("compliance_officer"))
    assert client.get("/policies/agent_gateway/v9/summary/").status_code == 404


def test_the_summary_shows_the_live_rollout_and_exceptions(client, make_user, gateway):
    from datetime import timedelta

    from django.utils import timezone

    from fleet.models import Environment
    from rollout import canary
    from rollout import exceptions as policy_exceptions
    from rollout import services as rollout_services
    from rollout.models import Mode

    admin = make_user("security_admin")
    environment = Environment.objects.default()
    rollout_services.change_rollout(gateway, environment, canary.Rollout(mode=Mode.DRY_RUN, enforce_percentage=30),
                          changed_by=admin, reason="canary")
    exception = policy_exceptions.request_exception(
        policy=gateway, environment=environment, match=[{"field": "user.id", "value": "u-112"}],
        reason_contains="token budget", justification="reports", ticket="SEC-7",
        expires_at=timezone.now() + timedelta(days=2), requested_by=make_user("policy_author"))
    policy_exceptions.approve_exception(exception, comment="Checked the ticket", approved_by=admin)
    from policies.models import ActiveVersion

    # The summary speaks of the environments that run the policy.
    ActiveVersion.objects.create(policy=gateway, environment=environment, version=gateway.latest_version,
                                 since=timezone.now())
    client.force_login(make_user("compliance_officer"))
    html = client.get("/policies/agent_gateway/v1/summary/").content.decode()
    assert "enforced for 30% of users; for the others, denials are only recorded (dry-run)." in html
    assert "Requests where user.id is u-112 are let through when denied for “token budget”" in html


def test_the_version_page_links_the_summary_and_flags_disagreeing_examples(client, make_user, gateway):
    from policies.models import VersionSummary

    version = gateway.latest_version
    client.force_login(make_user("policy_author"))
    page = client.get(f"/policies/agent_gateway/v{version.number}/").content.decode()
    assert "/policies/agent_gateway/v1/summary/" in page
    assert VersionSummary.objects.get(version=version).data["examples"]["disagree"] == 0  # made at save time
    assert 'data-testid="example-failures"' not in page

    stored = VersionSummary.objects.get(version=version)
    stored.data["examples"]["disagree"] = 2  # as if OPA had contradicted two worked examples
    stored.save()
    page = client.get(f"/policies/agent_gateway/v{version.number}/").content.decode()
    assert "2 worked examples of this version disagree with what OPA decided" in page


@pytest.mark.parametrize("page", ["summary", "evidence"])
def test_many_exceptions_cost_the_officers_pages_no_query_each(client, make_user, gateway, page):
    """Each exception in force names who approved it: read with the exceptions, not one by one (with
    100 exceptions in force the summary ran 102 queries for their approvers)."""
    from datetime import timedelta

    from django.db import connection
    from django.test.utils import CaptureQueriesContext
    from django.utils import timezone

    from fleet.models import Environment
    from rollout import exceptions as policy_exceptions

    def grant(n):
        approver = make_user("security_admin", username=f"approver-{n}")
        exception = policy_exceptions.request_exception(
            policy=gateway, environment=Environment.objects.default(), match=[{"field": "user.id", "value": f"u-{n}"}],
            justification="reports", ticket=f"SEC-{n}", expires_at=timezone.now() + timedelta(days=2),
            requested_by=make_user("policy_author"))
        policy_exceptions.approve_exception(exception, comment="Checked", approved_by=approver)

    client.force_login(make_user("compliance_officer"))
    url = f"/policies/agent_gateway/v1/{page}/"

    def queries_with(count):
        while gateway.exceptions.count() < count:
            grant(gateway.exceptions.count())
        client.get(url)  # the summary is worked out and kept on the first visit
        with CaptureQueriesContext(connection) as queries:
            html = client.get(url).content.decode()
        return len(queries.captured_queries), html

    one, _ = queries_with(1)
    many, html = queries_with(6)
    assert many == one
    assert "Requests where user.id is u-5 are let through" in html and "approver-5" in html
