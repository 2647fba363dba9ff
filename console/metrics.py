"""/metrics: Gavel in Prometheus's text format, for the dashboards and alerts of the runbook.

Every figure is read cheaply: decisions and their latency from the hourly rollups (core/rollups.py,
a few rows per hour, never a count over the decisions table), the rest from small tables and
Redis. Counters are totals over the rollups kept, so a week that retention drops makes them fall,
which Prometheus reads as a counter reset.

It answers a scraper that presents `Authorization: Bearer <GAVEL_METRICS_TOKEN>` or comes from an
address in GAVEL_METRICS_ALLOWED; anyone else gets 401 (neither set: nobody).
"""
from __future__ import annotations

import hmac
import ipaddress
from collections import Counter, defaultdict

from django.conf import settings
from django.contrib.auth.decorators import login_not_required
from django.db.models import Count, Q, Sum
from django.http import HttpResponse
from django.views.decorators.http import require_GET
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from approvals.models import HeldAction
from audit.ingest_health import refused_totals
from core.models import DecisionRollup, LogBatch
from core.rollups import HOUR, bucket_nanoseconds, latency_histograms
from fleet.models import DriftAlert
from policies.models import Policy, Publication

# Upper bounds (seconds) of the latency histogram's buckets: 100 ms, the runbook's limit, is one.
LATENCY_BOUNDS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)


def _policy_names() -> dict[int | None, str]:
    return {None: "", **dict(Policy.objects.values_list("pk", "name"))}


def decision_counts(names) -> CounterMetricFamily:
    family = CounterMetricFamily("gavel_decisions", "Decisions stored, by environment, policy, outcome and mode "
                                 "(CI checks included, mode as the entrypoint decided).",
                                 labels=["environment", "policy", "outcome", "mode"])
    rows = (DecisionRollup.objects.filter(granularity=HOUR)
            .values_list("environment", "policy_id", "outcome", "effective_mode").annotate(n=Sum("decisions"))
            .order_by("environment", "policy_id", "outcome", "effective_mode"))
    for environment, policy_id, outcome, mode, n in rows:
        family.add_metric([environment, names.get(policy_id, ""), outcome, mode], n)
    return family


def latency_histogram(names) -> HistogramMetricFamily:
    family = HistogramMetricFamily("gavel_decision_latency_seconds", "OPA's evaluation time of stored decisions "
                                   "(from the latency rollups: within about 4.5 %).", labels=["environment", "policy"])
    histograms: dict[tuple, Counter] = defaultdict(Counter)
    by_policy = latency_histograms(DecisionRollup.objects.filter(granularity=HOUR), "environment", "policy_id")
    for (environment, policy_id), histogram in by_policy.items():  # policies no longer known share a label
        histograms[(environment, names.get(policy_id, ""))].update(histogram)
    for labels, histogram in sorted(histograms.items()):
        counts, total, seconds = [0] * len(LATENCY_BOUNDS), 0, 0.0
        for bucket, n in histogram.items():
            value = bucket_nanoseconds(bucket) / 1e9
            total, seconds = total + n, seconds + n * value
            for index, bound in enumerate(LATENCY_BOUNDS):
                if value <= bound:
                    counts[index] += n
        buckets = [(repr(bound), count) for bound, count in zip(LATENCY_BOUNDS, counts)] + [("+Inf", total)]
        family.add_metric(list(labels), buckets, sum_value=seconds)
    return family


def ingest_and_fleet() -> list:
    queued = GaugeMetricFamily("gavel_ingest_queued_batches", "Decision-log batches waiting to be stored.")
    queued.add_metric([], LogBatch.objects.filter(status=LogBatch.Status.QUEUED).count())
    failed = GaugeMetricFamily("gavel_ingest_failed_batches", "Batches that could not be stored, waiting on a person.")
    failed.add_metric([], LogBatch.objects.filter(status=LogBatch.Status.FAILED).count())
    families = [queued, failed]
    totals = refused_totals()
    if totals is not None:  # Redis down: leave the series out rather than report zeros
        refused = CounterMetricFamily("gavel_ingest_refused_batches", "Decision-log uploads refused, by HTTP status.",
                                      labels=["status"])
        for status, n in totals.items():
            refused.add_metric([str(status)], n)
        families.append(refused)
    publish = CounterMetricFamily("gavel_publish_failures", "Publications to an OPA instance that failed.",
                                  labels=["environment"])
    for environment, n in (Publication.objects.filter(status=Publication.Status.FAILED)
                           .values_list("environment__name").annotate(n=Count("pk")).order_by("environment__name")):
        publish.add_metric([environment or ""], n)
    drift = CounterMetricFamily("gavel_drift_alerts", "Times an OPA instance was found running something other "
                                "than what Gavel published.", labels=["environment"])
    open_drift = GaugeMetricFamily("gavel_drift_alerts_open", "Drift alerts not resolved yet.", labels=["environment"])
    for environment, n, unresolved in (DriftAlert.objects.values_list("environment__name")
                                       .annotate(n=Count("pk"), unresolved=Count("pk", filter=Q(resolved_at__isnull=True)))
                                       .order_by("environment__name")):
        drift.add_metric([environment], n)
        open_drift.add_metric([environment], unresolved)
    held = GaugeMetricFamily("gavel_held_actions_waiting", "Held actions waiting for a reviewer.")
    held.add_metric([], HeldAction.objects.filter(status=HeldAction.Status.PENDING).count())
    return families + [publish, drift, open_drift, held]


class GavelCollector:
    def collect(self):
        names = _policy_names()
        yield decision_counts(names)
        yield latency_histogram(names)
        yield from ingest_and_fleet()


def render() -> bytes:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(GavelCollector())
    return generate_latest(registry)


def scraper_allowed(request) -> bool:
    header = request.META.get("HTTP_AUTHORIZATION", "")
    token = settings.GAVEL_METRICS_TOKEN
    if token and header.startswith("Bearer ") and hmac.compare_digest(header[7:].encode(), token.encode()):
        return True
    try:
        address = ipaddress.ip_address(request.META.get("REMOTE_ADDR", ""))
    except ValueError:
        return False
    return any(address in ipaddress.ip_network(network, strict=False) for network in settings.GAVEL_METRICS_ALLOWED)


@login_not_required  # a scraper, not a person: its token or address is checked below
@require_GET
def metrics(request):
    if not scraper_allowed(request):
        response = HttpResponse("/metrics needs GAVEL_METRICS_TOKEN as a bearer token, or an address in "
                                "GAVEL_METRICS_ALLOWED\n", status=401, content_type="text/plain")
        response["WWW-Authenticate"] = 'Bearer realm="metrics"'
        return response
    return HttpResponse(render(), content_type=CONTENT_TYPE_LATEST)
