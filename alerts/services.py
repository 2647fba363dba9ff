"""Alerts on recent decisions: a deny rate or a p95 latency above its rule's threshold.

Every minute `evaluate` measures each enabled rule over its window of whole minutes, read
from the rollups, hour and day rows for the whole hours and days in it (so it costs the same at
ten million decisions as at ten, and a day's window about as little as five minutes), and
opens an alert when the value goes above the threshold, or closes it when it comes back.
Opening and closing are each sent once to GAVEL_ALERT_WEBHOOK_URL.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import Q, Sum
from django.utils import timezone

from core import rollups, webhooks
from core.models import DENIED_OUTCOMES, DecisionRollup

from .models import Alert, AlertRule


@dataclass(frozen=True)
class Measurement:
    value: float | None  # None: too few decisions to judge
    decisions: int
    since: datetime
    until: datetime


def window(rule: AlertRule, now: datetime) -> tuple[datetime, datetime]:
    """The rule's last `window_minutes` whole minutes before now."""
    until = now.replace(second=0, microsecond=0)
    return until - timedelta(minutes=rule.window_minutes), until


def measure(rule: AlertRule, now: datetime | None = None) -> Measurement:
    since, until = window(rule, now or timezone.now())
    where = rollups.covering(since, until)  # a day's rule reads 24 hour rows, not 1,440 minute rows
    if rule.environment:
        where &= Q(environment=rule.environment)
    if rule.policy_id:
        where &= Q(policy_id=rule.policy_id)
    rows = DecisionRollup.objects.filter(where)
    total = rows.aggregate(n=Sum("decisions"))["n"] or 0
    if total < max(rule.min_decisions, 1):
        return Measurement(None, total, since, until)
    if rule.metric == AlertRule.Metric.DENY_RATE:
        denied = rows.filter(outcome__in=DENIED_OUTCOMES).aggregate(n=Sum("decisions"))["n"] or 0
        return Measurement(100 * denied / total, total, since, until)
    histogram = rollups.latency_histograms(rows).get((), {})
    p95 = rollups.percentiles(histogram, [0.95]).get(0.95)
    return Measurement(None if p95 is None else p95 / 1e6, total, since, until)


def evaluate(now: datetime | None = None) -> list[tuple[Alert, str]]:
    """Open or close each enabled rule's alert; returns what changed: (alert, "opened"|"closed")."""
    now = now or timezone.now()
    changes = []
    for rule in AlertRule.objects.filter(enabled=True).select_related("policy"):
        measurement = measure(rule, now)
        if measurement.value is None:
            continue  # too few decisions: leave an open alert open until there is evidence either way
        with transaction.atomic():
            current = Alert.objects.select_for_update().filter(rule=rule, closed_at__isnull=True).first()
            above, change = measurement.value > rule.threshold, None
            if current is None and above:
                current = Alert.objects.create(rule=rule, opened_at=now, opened_value=measurement.value,
                                               peak_value=measurement.value, last_value=measurement.value,
                                               decisions=measurement.decisions)
                change = "opened"
            elif current is not None and not above:
                current.closed_at, current.last_value = now, measurement.value
                current.save(update_fields=["closed_at", "last_value"])
                change = "closed"
            elif current is not None:
                current.last_value, current.peak_value = measurement.value, max(current.peak_value, measurement.value)
                current.save(update_fields=["last_value", "peak_value"])
            if change:
                changes.append((current, change))
                webhooks.send([settings.GAVEL_ALERT_WEBHOOK_URL], payload(current, change))
    return changes


def search_query(alert: Alert) -> dict:
    """The dashboard filters that show the decisions behind an alert's window when it opened."""
    rule = alert.rule
    since, until = window(rule, alert.opened_at)
    query = {"since": since.strftime("%Y-%m-%dT%H:%M"), "until": until.strftime("%Y-%m-%dT%H:%M")}
    if rule.environment:
        query["environment"] = rule.environment
    if rule.policy_id:
        query["policy"] = rule.policy.name
    return query


def payload(alert: Alert, kind: str) -> dict:
    rule = alert.rule
    return {
        "event": f"alert.{kind}",
        "rule": rule.name,
        "metric": rule.metric,
        "threshold": rule.threshold,
        "value": alert.last_value if kind == "closed" else alert.opened_value,
        "window_minutes": rule.window_minutes,
        "environment": rule.environment or None,
        "policy": rule.policy.name if rule.policy_id else None,
        "opened_at": alert.opened_at.isoformat(),
        "closed_at": alert.closed_at.isoformat() if alert.closed_at else None,
    }
