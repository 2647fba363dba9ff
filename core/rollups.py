"""Per-minute, per-hour and per-day rollups of stored decisions, which the dashboard's charts read instead of raw rows.

Ingest adds each batch's fresh decisions to the rollups in the statement that stores them
(Postgres counts them: core/store.py), so the counts are exact: a redelivered batch adds
nothing, a failed one nothing either.
Latency is kept as a histogram (log-spaced buckets, 8 per doubling, so within ~4.5 % of the
true value) because percentiles of minutes cannot be combined, but histograms can.
"""
from __future__ import annotations

import math
from collections.abc import Iterable
from datetime import UTC, datetime

from django.db import connection

from .models import DecisionRollup, LatencyRollup, ReasonRollup

BUCKETS_PER_DOUBLING = 8
COLUMNS = ["granularity", "period", "environment", "policy_id", "version_id", "outcome", "effective_mode"]
MINUTE, HOUR, DAY = (DecisionRollup.Granularity.MINUTE, DecisionRollup.Granularity.HOUR,
                     DecisionRollup.Granularity.DAY)


def latency_bucket(nanoseconds: int) -> int:
    return math.floor(math.log2(max(nanoseconds, 1)) * BUCKETS_PER_DOUBLING + 0.5)


def bucket_nanoseconds(bucket: int) -> float:
    return 2 ** (bucket / BUCKETS_PER_DOUBLING)


GRANULARITIES = ((MINUTE, "minute"), (HOUR, "hour"), (DAY, "day"))
# A decision's key and the columns the counting reads: all the storing statement returns of a new row.
COUNTED_COLUMNS = "decision_id, environment, timestamp, policy_id, version_id, outcome, effective_mode, reasons, latency_ns"
# The same rounding as latency_bucket(), in SQL.
LATENCY_BUCKET = f"floor(ln(greatest(d.latency_ns, 1)::float8) / ln(2) * {BUCKETS_PER_DOUBLING} + 0.5)::smallint"


def counting_statements(source: str) -> list[str]:
    """The INSERTs that count the decisions of `source` (a table, subquery or WITH name with at
    least COUNTED_COLUMNS) into the three rollups, each decision in its minute, hour and UTC day.

    Counts add to what is there. Rows are upserted in key order, so workers storing at the same
    time lock them in the same order and cannot deadlock."""
    periods = ", ".join(f"({int(granularity)}, '{unit}')" for granularity, unit in GRANULARITIES)
    dims = ("g.granularity, date_trunc(g.unit, d.timestamp, 'UTC'), d.environment, d.policy_id, d.version_id, "
            "d.outcome, d.effective_mode")
    statements = []
    for model, extra, joined, where in (
            (DecisionRollup, None, "", ""),
            (ReasonRollup, ("reason", "r.reason"), "CROSS JOIN LATERAL (SELECT DISTINCT unnest(d.reasons) AS reason) AS r", ""),
            (LatencyRollup, ("latency_bucket", LATENCY_BUCKET), "", "WHERE d.latency_ns IS NOT NULL")):
        table = model._meta.db_table
        columns = ", ".join(f'"{column}"' for column in COLUMNS + ([extra[0]] if extra else []))
        selected = dims + (f", {extra[1]}" if extra else "")
        keys = ", ".join(str(n) for n in range(1, len(COLUMNS) + (2 if extra else 1)))
        statements.append(
            f"INSERT INTO {table} ({columns}, decisions) "
            f"SELECT {selected}, count(*) FROM {source} AS d CROSS JOIN (VALUES {periods}) AS g(granularity, unit) "
            f"{joined} {where} GROUP BY {keys} ORDER BY {keys} "
            f"ON CONFLICT ({columns}) DO UPDATE SET decisions = {table}.decisions + EXCLUDED.decisions")
    return statements


def rebuild(since: datetime | None = None) -> None:
    """Recount the rollups from stored decisions (from the start of `since`'s UTC day, else all):
    for upgrades and repairs. From a day's start, so its day rows are recounted whole."""
    if since:
        since = since.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    source = "(SELECT * FROM audit_decision WHERE timestamp >= %(since)s)" if since else "audit_decision"
    with connection.cursor() as cursor:
        for model in (DecisionRollup, ReasonRollup, LatencyRollup):
            cursor.execute(f"DELETE FROM {model._meta.db_table} " + ("WHERE period >= %(since)s" if since else ""),
                           {"since": since})
        for statement in counting_statements(source):
            cursor.execute(statement, {"since": since})


def percentiles(histogram: dict[int, int], fractions: Iterable[float]) -> dict[float, float]:
    """Nearest-rank percentiles (in ns) from {bucket: count}."""
    total = sum(histogram.values())
    found = {}
    if not total:
        return found
    ordered = sorted(histogram.items())
    for fraction in fractions:
        rank, seen = max(1, math.ceil(fraction * total)), 0
        for bucket, count in ordered:
            seen += count
            if seen >= rank:
                found[fraction] = bucket_nanoseconds(bucket)
                break
    return found


def forget(environment: str, start: datetime, end: datetime) -> None:
    """Remove the rollups of decisions that retention dropped, so charts and searches agree."""
    for model in (DecisionRollup, ReasonRollup, LatencyRollup):
        model.objects.filter(environment=environment, period__gte=start, period__lt=end).delete()
