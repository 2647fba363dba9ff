"""The audit trail pages: filters, htmx partial refresh, pagination, escaping."""
from datetime import datetime, timedelta
from datetime import timezone as tz

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from core.models import Outcome
from tests.factories import DecisionFactory, PolicyFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def auditor_client(client, make_user):
    client.force_login(make_user("auditor"))
    return client


def test_filters_by_outcome_path_and_reason(auditor_client):
    denied = DecisionFactory(outcome=Outcome.DENY, reasons=["token budget exceeded"])
    DecisionFactory(outcome=Outcome.DENY, reasons=["user is blocked"], path="gavel/other/decision")
    DecisionFactory()

    page = auditor_client.get("/audit/", {"outcome": "deny", "path": "gavel/agent_gateway", "q": "BUDGET"})

    assert list(page.context["page"].object_list) == [denied]
    assert "1 decision" in page.content.decode()


def test_time_range_filter(auditor_client):
    now = timezone.now()
    old = DecisionFactory(timestamp=now - timedelta(days=3))
    DecisionFactory(timestamp=now)
    page = auditor_client.get("/audit/", {"until": (now - timedelta(days=1)).isoformat()})
    assert list(page.context["page"].object_list) == [old]


def test_time_range_as_the_browser_date_picker_sends_it(auditor_client):
    # <input type="datetime-local"> sends minutes and no zone; Gavel reads it as UTC.
    DecisionFactory(timestamp=datetime(2026, 3, 1, 9, 30, tzinfo=tz.utc))
    inside = DecisionFactory(timestamp=datetime(2026, 3, 1, 10, 15, tzinfo=tz.utc))
    page = auditor_client.get("/audit/", {"since": "2026-03-01T10:00", "until": "2026-03-01T11:00"})
    assert list(page.context["page"].object_list) == [inside]


def test_htmx_request_gets_only_the_results_partial(auditor_client):
    DecisionFactory()
    full = auditor_client.get("/audit/")
    partial = auditor_client.get("/audit/", HTTP_HX_REQUEST="true")
    # The partial has the results (and the export form for them), never the filter form or the page shell.
    assert '<form class="filters' in full.content.decode()
    assert '<form class="filters' not in partial.content.decode() and "<html" not in partial.content.decode()
    assert "<table" in partial.content.decode() and 'data-testid="export-form"' in partial.content.decode()


def test_newest_first_and_paginated(auditor_client):
    decisions = [DecisionFactory() for _ in range(55)]  # the factory makes each one a minute older
    first = auditor_client.get("/audit/")
    assert first.context["page"].object_list[0] == decisions[0]
    second = auditor_client.get("/audit/", {"page": 2})
    assert len(second.context["page"].object_list) == 5


def test_decision_inputs_are_escaped_everywhere(auditor_client):
    script = "<script>alert('x')</script>"
    decision = DecisionFactory(input={"user": {"id": script}, "note": script}, outcome=Outcome.DENY,
                               reasons=[f"denied {script}"])
    for url in ("/audit/", f"/audit/{decision.decision_id}/", "/"):
        body = auditor_client.get(url).content.decode()
        assert script not in body, url
    detail = auditor_client.get(f"/audit/{decision.decision_id}/").content.decode()
    assert "&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt;" in detail


def test_an_invalid_filter_says_so_instead_of_showing_everything(auditor_client):
    DecisionFactory()
    page = auditor_client.get("/audit/", {"since": "not a date"})
    assert page.context["page"].paginator.count == 0
    assert "Enter a valid date/time." in page.content.decode()


def queries_of(client, url: str) -> list[str]:
    with CaptureQueriesContext(connection) as captured:
        assert client.get(url).status_code == 200
    return [query["sql"] for query in captured.captured_queries]


@pytest.mark.parametrize("url", ["/audit/", "/"])
def test_lists_of_decisions_leave_the_documents_in_postgres_and_cost_no_query_a_row(auditor_client, url):
    """A list shows when, the outcome, the policy and version, who and why. A client may send an
    input of megabytes: the list reads no input or result, nor the Rego source of the version that
    decided (it came with each of the 50 rows of a page), and ten rows cost what one does."""
    policy = PolicyFactory(name="listed")
    DecisionFactory(policy=policy, version=policy.latest_version, input={"user": {"id": "u-1"}, "blob": "x" * 200_000})
    one = queries_of(auditor_client, url)
    for _ in range(9):
        DecisionFactory(policy=policy, version=policy.latest_version)
    ten = queries_of(auditor_client, url)

    assert len(ten) == len(one)
    listed = [sql for sql in ten if 'FROM "audit_decision"' in sql and '"policies_policyversion"' in sql]
    assert listed
    assert not any(f'"audit_decision"."{column}"' in sql for sql in listed for column in ("input", "result", "search"))
    assert not any(f'"policies_policyversion"."{column}"' in sql for sql in listed for column in ("source", "tests"))
