"""The audit dashboard: every chart follows the page's filters, and each point's link opens a
search that finds exactly the decisions the point counts."""
from datetime import timedelta

import pytest
from django.utils import timezone

from audit.models import Outcome
from tests.factories import DecisionFactory, PolicyFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def decisions():
    gateway, changes = PolicyFactory(name="gateway"), PolicyFactory(name="changes")
    now = timezone.now().replace(second=0, microsecond=0)
    plan = [  # (policy, outcome, reasons, minutes ago, latency ms)
        (gateway, Outcome.ALLOW, [], 1, 0.2), (gateway, Outcome.ALLOW, [], 2, 0.3),
        (gateway, Outcome.DENY, ["token budget exceeded"], 2, 0.5),
        (gateway, Outcome.DENY, ["token budget exceeded", "user is suspended"], 3, 0.9),
        (gateway, Outcome.WOULD_DENY, ["token budget exceeded"], 3, 0.4),
        (gateway, Outcome.REQUIRE_APPROVAL, ["prod deletes need a reviewer"], 4, 0.6),
        (changes, Outcome.DENY, ["bucket must be encrypted"], 5, 1.2),
        (changes, Outcome.ALLOW, [], 30, 0.1),
    ]
    for policy, outcome, reasons, minutes, ms in plan:
        DecisionFactory(policy=policy, version=policy.latest_version, outcome=outcome, reasons=reasons,
                        timestamp=now - timedelta(minutes=minutes, seconds=-5), latency_ns=int(ms * 1e6))


def figure(page, key):
    return next(c["figure"] for c in page.context["charts"] if c["key"] == key)


def search_count(client, url):
    return client.get(url).context["page"].paginator.count


@pytest.fixture
def auditor(client, make_user):
    client.force_login(make_user("auditor"))
    return client


@pytest.mark.parametrize("filters", [{}, {"policy": "gateway"}, {"outcome": "deny"}, {"policy": "changes"}])
def test_each_bar_links_to_a_search_with_the_same_count(auditor, decisions, filters):
    page = auditor.get("/audit/dashboard/", filters)
    assert page.status_code == 200
    assert page.context["total"] == search_count(auditor, page.context["search_url"])
    bars = [(y, url) for trace in figure(page, "volume")["data"] if trace["type"] == "bar"
            for y, url in zip(trace["y"], trace["customdata"])]
    assert sum(y for y, _ in bars) == page.context["total"]
    for count, url in bars:
        assert search_count(auditor, url) == count, url
    for trace in figure(page, "reasons")["data"]:
        for count, url in zip(trace["x"], trace["customdata"]):
            assert search_count(auditor, url) == count, url


def test_reasons_by_version_and_dry_run_against_enforced(auditor, decisions):
    page = auditor.get("/audit/dashboard/", {"policy": "gateway"})
    versions = figure(page, "versions")["data"]
    assert [trace["name"] for trace in versions] == ["gateway v1"]
    assert dict(zip(versions[0]["y"], versions[0]["x"]))["token budget exceeded"] == 3
    lines = {trace["name"]: sum(trace["y"]) for trace in figure(page, "dry_run")["data"]}
    assert lines == {"Enforced deny": 2, "Dry-run: would deny": 1}


def test_latency_percentiles_come_from_opa_metrics(auditor, decisions):
    page = auditor.get("/audit/dashboard/", {"policy": "changes", "outcome": "deny"})
    p50 = next(t for t in figure(page, "latency")["data"] if t["name"] == "p50")
    assert p50["y"] == [pytest.approx(1.2, rel=0.05)]  # from the rollups' histogram: within one bucket


def test_the_dashboard_needs_the_audit_role(client, make_user):
    client.force_login(make_user("compliance_officer"))
    assert client.get("/audit/dashboard/").status_code == 403


def test_chart_text_is_data_not_markup(auditor):
    DecisionFactory(outcome=Outcome.DENY, reasons=["</script><script>alert(1)</script>"])
    body = auditor.get("/audit/dashboard/").content.decode()
    assert "</script><script>alert(1)" not in body  # json_script escapes < > & inside the JSON


def test_charts_read_rollups_unless_a_filter_needs_the_rows(auditor, decisions):
    since = (timezone.now() - timedelta(minutes=3)).replace(second=0, microsecond=0)
    for filters, source in (({}, "RolledUp"), ({"since": since.strftime("%Y-%m-%dT%H:%M")}, "RolledUp"),
                            ({"q": "budget"}, "RawRows"),
                            ({"since": since.strftime("%Y-%m-%dT%H:%M:%S.123")}, "RawRows")):
        page = auditor.get("/audit/dashboard/", filters)
        assert page.context["source"] == source, filters
        assert page.context["total"] == search_count(auditor, page.context["search_url"]), filters
        bars = [(y, url) for trace in figure(page, "volume")["data"] if trace["type"] == "bar"
                for y, url in zip(trace["y"], trace["customdata"])]
        assert sum(y for y, _ in bars) == page.context["total"]
        for count, url in bars:
            assert search_count(auditor, url) == count, url
