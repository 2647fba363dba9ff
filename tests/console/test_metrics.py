"""/metrics, scraped as Prometheus would and read with Prometheus's own text parser: the decision
counts equal the decisions stored, the latency histogram holds every timed decision, and only the
metrics token (or an allowed address) gets in."""
from collections import Counter

import pytest
from prometheus_client.parser import text_string_to_metric_families

from approvals import services as approvals
from core.models import Decision, LogBatch
from tests.factories import DecisionFactory, PolicyFactory

pytestmark = pytest.mark.django_db
TOKEN = "test-metrics-token"


def scrape(client, **headers):
    return client.get("/metrics", **headers)


def families(text):
    return {family.name: family for family in text_string_to_metric_families(text)}


def test_counts_equal_the_decisions_stored(client, settings):
    settings.GAVEL_METRICS_TOKEN = TOKEN
    budget, gateway = PolicyFactory(name="m_budget"), PolicyFactory(name="m_gateway")
    cases = [(budget, "prod", "allow", "enforce", 2_000_000)] * 5 + [(budget, "prod", "deny", "enforce", 150_000_000)] * 2
    cases += [(gateway, "staging", "would_deny", "dry-run", None)] * 3 + [(None, "prod", "undefined", "", 40_000)]
    for policy, environment, outcome, mode, latency in cases:
        DecisionFactory(policy=policy, environment=environment, outcome=outcome, effective_mode=mode,
                        latency_ns=latency, reasons=["no"] if outcome != "allow" else [])
    LogBatch.objects.create(body_gz=b"", event_count=0)  # one batch waiting
    approvals.hold(decision_id="m-held", path="gavel_entry/m_budget/decision", request={"user": {"id": "dana"}},
                   result={"allow": False, "require_approval": True, "reasons": ["needs a reviewer"]},
                   created_from="api")

    response = scrape(client, HTTP_AUTHORIZATION=f"Bearer {TOKEN}")
    assert response.status_code == 200 and response["Content-Type"].startswith("text/plain")
    parsed = families(response.content.decode())

    scraped = Counter()
    for sample in parsed["gavel_decisions"].samples:
        assert sample.name == "gavel_decisions_total"
        labels = sample.labels
        scraped[(labels["environment"], labels["policy"], labels["outcome"], labels["mode"])] += sample.value
    stored = Counter((d.environment, d.policy.name if d.policy else "", d.outcome, d.effective_mode)
                     for d in Decision.objects.select_related("policy"))
    assert scraped == stored

    histogram = {(s.name, s.labels.get("le"), s.labels["environment"], s.labels["policy"]): s.value
                 for s in parsed["gavel_decision_latency_seconds"].samples}
    assert histogram[("gavel_decision_latency_seconds_count", None, "prod", "m_budget")] == 7
    assert histogram[("gavel_decision_latency_seconds_bucket", "0.1", "prod", "m_budget")] == 5  # 2 ms, not 150
    assert histogram[("gavel_decision_latency_seconds_bucket", "+Inf", "prod", "m_budget")] == 7
    assert ("gavel_decision_latency_seconds_count", None, "staging", "m_gateway") not in histogram  # untimed

    assert parsed["gavel_ingest_queued_batches"].samples[0].value == 1
    assert parsed["gavel_held_actions_waiting"].samples[0].value == 1
    assert {s.labels["status"] for s in parsed["gavel_ingest_refused_batches"].samples} >= {"400", "429"}


def test_only_the_metrics_token_or_an_allowed_address_gets_in(client, settings, make_user):
    settings.GAVEL_METRICS_TOKEN, settings.GAVEL_METRICS_ALLOWED = TOKEN, []
    assert scrape(client).status_code == 401
    assert scrape(client, HTTP_AUTHORIZATION="Bearer wrong").status_code == 401
    client.force_login(make_user("security_admin"))
    assert scrape(client).status_code == 401  # a person's session is not a scraper
    client.logout()
    settings.GAVEL_METRICS_ALLOWED = ["127.0.0.0/8"]
    assert scrape(client).status_code == 200  # the test client comes from 127.0.0.1
    settings.GAVEL_METRICS_TOKEN, settings.GAVEL_METRICS_ALLOWED = "", []
    assert scrape(client, HTTP_AUTHORIZATION="Bearer ").status_code == 401  # neither set: nobody
