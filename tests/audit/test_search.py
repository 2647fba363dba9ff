"""Searching the audit trail: each filter against real rows, Postgres full-text search over
reasons and chosen input fields, and the API answering the same parameters as the page."""
import pytest
from rest_framework.authtoken.models import Token

from core.models import Outcome
from policies import services
from tests.factories import DecisionFactory, PolicyFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def auditor(client, make_user):
    client.force_login(make_user("auditor"))
    return client


@pytest.fixture
def rows():
    """Two decisions by dana's copilot in prod, one by erin's agent in staging, under two versions."""
    gateway = PolicyFactory(name="gateway")
    v1 = gateway.latest_version
    v2 = services.save_version(gateway, source=v1.source.replace('"admin"', '"owner"'), author=v1.author,
                               message="owners too")
    return {
        "dana_sql": DecisionFactory(
            policy=gateway, version=v1, outcome=Outcome.DENY, environment="prod", instance="opa-eu-1",
            reasons=["token budget exceeded", "sql on production needs a ticket"],
            input={"user": {"id": "dana"}, "agent": {"id": "copilot-7"}, "action": "sql.query",
                   "resource": {"id": "db/orders"}, "args": {"query": "select * from orders"}}),
        "dana_dry_run": DecisionFactory(
            policy=gateway, version=v2, outcome=Outcome.WOULD_DENY, environment="prod", instance="opa-eu-2",
            reasons=["token budget exceeded"],
            input={"user": {"id": "dana"}, "agent": {"id": "copilot-7"}, "action": "web.search",
                   "resource": {"id": "internet"}}),
        "erin": DecisionFactory(
            policy=gateway, version=v2, outcome=Outcome.ALLOW, environment="staging", instance="opa-us-1",
            input={"user": {"id": "erin"}, "agent": {"id": "summarizer"}, "action": "sql.query",
                   "resource": {"id": "db/reports"}, "reason": "quarterly report"}),
    }


def found(client, params):
    response = client.get("/audit/", params)
    assert response.status_code == 200
    return {d.decision_id for d in response.context["page"].paginator.object_list}


def ids(rows, *names):
    return {rows[name].decision_id for name in names}


@pytest.mark.parametrize("params, expected", [
    ({"environment": "prod"}, ("dana_sql", "dana_dry_run")),
    ({"instance": "opa-us-1"}, ("erin",)),
    ({"user": "dana"}, ("dana_sql", "dana_dry_run")),
    ({"user": "dan"}, ()),  # exact, not a prefix
    ({"agent": "summarizer"}, ("erin",)),
    ({"action": "sql.query"}, ("dana_sql", "erin")),
    ({"resource": "db/orders"}, ("dana_sql",)),
    ({"policy": "gateway", "version": 2}, ("dana_dry_run", "erin")),
    ({"version": 1}, ("dana_sql",)),
    ({"reason": "token budget exceeded"}, ("dana_sql", "dana_dry_run")),
    ({"reason": "token budget"}, ()),  # one whole reason, not a part of one
    ({"outcome": "denied"}, ("dana_sql", "dana_dry_run")),  # enforced or dry-run
    ({"outcome": "would_deny"}, ("dana_dry_run",)),
    ({"user": "dana", "action": "sql.query"}, ("dana_sql",)),
])
def test_each_filter_selects_exactly_its_decisions(auditor, rows, params, expected):
    assert found(auditor, params) == ids(rows, *expected)


@pytest.mark.parametrize("q, expected", [
    ("budget", ("dana_sql", "dana_dry_run")),  # a word of a reason
    ("BUDGET", ("dana_sql", "dana_dry_run")),  # any case
    ("sql.query", ("dana_sql", "erin")),  # a tool name stays whole ("simple", no stemming)
    ("quarterly", ("erin",)),  # a chosen input field (reason), not only the policy's reasons
    ('"needs a ticket"', ("dana_sql",)),  # a phrase
    ("budget -ticket", ("dana_dry_run",)),  # and not
    ("ticket or quarterly", ("dana_sql", "erin")),
    ("orders", ("dana_sql",)),  # args.query, one of the chosen input fields
])
def test_free_text_is_postgres_full_text_search(auditor, rows, q, expected):
    assert found(auditor, {"q": q}) == ids(rows, *expected)


def test_odd_search_syntax_finds_nothing_rather_than_failing(auditor, rows):
    for q in ('"', "-", "or", "&|!():*", "'; drop table audit_decision; --", "nul\x00byte"):
        assert found(auditor, {"q": q}) == set(), q


def test_a_bad_version_says_so(auditor, rows):
    response = auditor.get("/audit/", {"version": "three"})
    assert response.context["page"].paginator.count == 0
    assert "Enter a number." in response.content.decode()


def test_the_form_shows_common_filters_and_folds_the_rest_until_used(auditor, rows):
    plain = auditor.get("/audit/").content.decode()
    assert '<details class="more-filters">' in plain and 'name="q"' in plain and 'name="agent"' in plain
    with_agent = auditor.get("/audit/", {"agent": "summarizer"}).content.decode()
    assert '<details class="more-filters" open>' in with_agent
    # The search in words, each filter with a link to the search without it.
    assert 'Agent:</span> <strong>summarizer</strong>' in with_agent


def test_the_api_takes_the_same_parameters(client, make_user, rows):
    token = Token.objects.create(user=make_user("auditor")).key
    params = {"environment": "prod", "q": "budget", "outcome": "denied", "agent": "copilot-7", "version": 1,
              "reason": "sql on production needs a ticket"}
    response = client.get("/api/v1/decisions/", params, HTTP_AUTHORIZATION=f"Token {token}")
    assert response.status_code == 200
    body = response.json()
    listed = body["results"] if isinstance(body, dict) else body
    assert [d["decision_id"] for d in listed] == [rows["dana_sql"].decision_id]
    assert listed[0]["user"] == "dana" and listed[0]["environment"] == "prod"
    client.force_login(make_user("auditor"))
    assert found(client, params) == ids(rows, "dana_sql")  # the page agrees
    refused = client.get("/api/v1/decisions/", {"version": "three"}, HTTP_AUTHORIZATION=f"Token {token}")
    assert refused.status_code == 400 and "version" in refused.json()
