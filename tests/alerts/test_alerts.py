"""Alerts: a deny rate or p95 latency above a rule's threshold opens an alert, shown in the
console and sent to the webhook; coming back below closes it. Measured from the rollups."""
from datetime import UTC, datetime, timedelta

import pytest
from django.utils import timezone
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from alerts import services as alerts
from alerts.models import Alert, AlertRule
from alerts.tasks import evaluate_alerts
from core import rollups, store
from core.models import Decision, DecisionRollup, Outcome
from tests.factories import DecisionFactory, PolicyFactory
from tests.fleet.support import WebhookReceiver
from tests.support import wait_until

pytestmark = pytest.mark.django_db


@pytest.fixture
def webhook(settings):
    receiver = WebhookReceiver()
    settings.GAVEL_ALERT_WEBHOOK_URL = receiver.url
    yield receiver
    receiver.close()


def decide(count, outcome, minutes_ago=1, latency_ms=0.2, **fields):
    start = timezone.now().replace(second=0, microsecond=0) - timedelta(minutes=minutes_ago)
    for n in range(count):
        DecisionFactory(outcome=outcome, timestamp=start + timedelta(seconds=n % 60), latency_ns=int(latency_ms * 1e6),
                        **fields)


@pytest.mark.django_db(transaction=True)  # the worker reads the alert the evaluation committed
def test_deny_rate_opens_then_closes_an_alert_and_tells_the_webhook(webhook, celery_worker):
    rule = AlertRule.objects.create(name="Deny spike", metric=AlertRule.Metric.DENY_RATE, threshold=20,
                                    window_minutes=5, min_decisions=10)
    decide(16, Outcome.ALLOW)
    decide(4, Outcome.DENY)  # 20 %: not above
    assert evaluate_alerts() == 0

    decide(6, Outcome.WOULD_DENY, minutes_ago=2)  # dry-run denials count: 10 of 26 = 38 %
    assert evaluate_alerts() == 1
    alert = Alert.objects.get(rule=rule)
    assert alert.is_open and alert.opened_value == pytest.approx(100 * 10 / 26)
    assert evaluate_alerts() == 0  # still firing: no second alert, no second message

    decide(40, Outcome.ALLOW, minutes_ago=3)  # 10 of 66 = 15 %
    assert evaluate_alerts() == 1
    alert.refresh_from_db()
    assert not alert.is_open and alert.peak_value == pytest.approx(100 * 10 / 26)

    wait_until(lambda: len(webhook.received) == 2)
    assert [m["event"] for m in webhook.received] == ["alert.opened", "alert.closed"]
    assert webhook.received[0]["rule"] == "Deny spike" and webhook.received[0]["threshold"] == 20


def test_p95_latency_is_read_from_the_latency_histogram():
    policy = PolicyFactory(name="slow")
    rule = AlertRule.objects.create(name="Slow OPA", metric=AlertRule.Metric.P95_LATENCY, threshold=5,
                                    window_minutes=10, min_decisions=20, policy=policy)
    decide(90, Outcome.ALLOW, latency_ms=1, policy=policy)
    decide(10, Outcome.ALLOW, latency_ms=40, policy=policy)  # the slowest tenth: p95 is 40 ms
    decide(500, Outcome.ALLOW, latency_ms=90)  # another policy's slowness is not this rule's business

    measurement = alerts.measure(rule)
    assert measurement.decisions == 100
    assert measurement.value == pytest.approx(40, rel=0.05)
    assert [kind for _, kind in alerts.evaluate()] == ["opened"]


def test_a_window_of_days_counts_exactly_its_decisions_from_hour_and_day_rows():
    """A rule over days reads day and hour rows for the whole days and hours in its window and
    minute rows only for the hours its ends cut (a day's rule: about 24 rows a key, not 1,440), and
    finds what a count over the decisions finds."""
    now = datetime(2026, 3, 5, 14, 37, 20, tzinfo=UTC)
    decision = st.tuples(st.integers(0, 4 * 24 * 60 + 30), st.integers(0, 59),
                         st.sampled_from([Outcome.ALLOW, Outcome.DENY, Outcome.WOULD_DENY]))

    @hypothesis_settings(max_examples=30, deadline=None, suppress_health_check=list(HealthCheck))
    @given(st.lists(decision, min_size=1, max_size=30), st.integers(1, 4 * 24 * 60))
    def check(plan, window_minutes):
        Decision.objects.all().delete()
        DecisionRollup.objects.all().delete()
        minute = now.replace(second=0)
        store.insert([DecisionFactory.build(timestamp=minute - timedelta(minutes=ago, seconds=-second), outcome=outcome)
                      for ago, second, outcome in plan])
        rule = AlertRule(name="Deny rate", metric=AlertRule.Metric.DENY_RATE, threshold=50,
                         window_minutes=window_minutes, min_decisions=1)
        since, until = alerts.window(rule, now)
        # Minute rows are needed only for the hours the window's ends cut: without the others, the
        # measurement is still exact.
        hour = timedelta(hours=1)
        cut = {rollups.floor_to(since, hour), rollups.floor_to(until, hour)}
        for row in DecisionRollup.objects.filter(granularity=DecisionRollup.Granularity.MINUTE):
            if rollups.floor_to(row.period, hour) not in cut:
                row.delete()

        measurement = alerts.measure(rule, now)

        inside = Decision.objects.filter(timestamp__gte=since, timestamp__lt=until)
        assert measurement.decisions == inside.count()
        denied = inside.filter(outcome__in=[Outcome.DENY, Outcome.WOULD_DENY]).count()
        if inside.exists():
            assert measurement.value == pytest.approx(100 * denied / inside.count())
        else:
            assert measurement.value is None  # nothing to judge

    check()


def test_too_few_decisions_and_old_ones_do_not_fire():
    rule = AlertRule.objects.create(name="Deny spike", metric=AlertRule.Metric.DENY_RATE, threshold=20,
                                    window_minutes=5, min_decisions=20)
    decide(5, Outcome.DENY)  # 100 %, but only five
    decide(50, Outcome.DENY, minutes_ago=30)  # outside the window
    assert alerts.measure(rule).value is None
    assert alerts.evaluate() == []


def test_the_alerts_page_shows_what_fires_and_links_to_its_decisions(client, make_user):
    rule = AlertRule.objects.create(name="Deny <b>spike</b>", metric=AlertRule.Metric.DENY_RATE, threshold=20,
                                    window_minutes=5, min_decisions=1)
    decide(3, Outcome.DENY)
    alerts.evaluate()
    client.force_login(make_user("auditor"))

    page = client.get("/audit/alerts/")
    html = page.content.decode()
    assert "Deny &lt;b&gt;spike&lt;/b&gt;" in html and "<b>spike" not in html
    row = page.context["open"][0]
    assert row["alert"].rule == rule
    assert client.get(row["search_url"]).context["page"].paginator.count == 3
    assert 'data-testid="open-alerts">1<' in html  # the badge in the navigation
    assert "New rule" not in html  # auditors read rules; security admins write them


def test_a_security_admin_adds_a_rule_and_bad_thresholds_are_refused(client, make_user):
    client.force_login(make_user("security_admin"))
    form = {"name": "Deny spike", "metric": "deny_rate", "threshold": "150", "window_minutes": "5",
            "min_decisions": "20", "environment": "prod", "policy": "", "enabled": "on"}
    refused = client.post("/audit/alerts/rules/new/", form)
    assert refused.status_code == 200 and "a percentage" in refused.content.decode()
    assert not AlertRule.objects.exists()

    assert client.post("/audit/alerts/rules/new/", {**form, "threshold": "25"}).status_code == 302
    rule = AlertRule.objects.get()
    assert (rule.threshold, rule.environment, rule.created_by.username) == (25, "prod", rule.created_by.username)
