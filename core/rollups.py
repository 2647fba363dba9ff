"""Per-minute, per-hour and per-day rollups of stored decisions, which the dashboard's charts read instead of raw rows.

Ingest adds each batch's fresh decisions to the rollups in the same transaction that stores
them, so the counts are exact: a redelivered batch adds nothing, a failed one nothing either.
Latency is kept as a histogram (log-spaced buckets, 8 per doubling, so within ~4.5 % of the
true value) because percentiles of minutes cannot be combined, but histograms can.
"""
from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable
from datetime import UTC, datetime

from django.db import connection

from .models import DecisionRollup, LatencyRollup, ReasonRollup

BUCKETS_PER_DOUBLING = 8
DIMENSIONS = ["granularity", "period", "environment", "policy_id", "version_id", "outcome", "effective_mode"]
SQL_TYPES = ["smallint", "timestamptz", "text", "bigint", "bigint", "text", "text"]
MINUTE, HOUR, DAY = (DecisionRollup.Granularity.MINUTE, DecisionRollup.Granularity.HOUR,
                     DecisionRollup.Granularity.DAY)


def latency_bucket(nanoseconds: int) -> int:
    return math.floor(math.log2(max(nanoseconds, 1)) * BUCKETS_PER_DOUBLING + 0.5)


def bucket_nanoseconds(bucket: int) -> float:
    return 2 ** (bucket / BUCKETS_PER_DOUBLING)


def _keys(decision) -> tuple[tuple, tuple, tuple]:
    minute = decision.timestamp.astimezone(UTC).replace(second=0, microsecond=0)
    rest = (decision.environment, decision.policy_id, decision.version_id, decision.outcome, decision.effective_mode)
    return ((int(MINUTE), minute, *rest), (int(HOUR), minute.replace(minute=0), *rest),
            (int(DAY), minute.replace(hour=0, minute=0), *rest))


def add(decisions: Iterable) -> None:
    """Count freshly stored decisions into the rollups (call inside the storing transaction)."""
    counts, reasons, latencies = Counter(), Counter(), Counter()
    for decision in decisions:
        for key in _keys(decision):
            counts[key] += 1
            for reason in set(decision.reasons):
                reasons[(*key, reason)] += 1
            if decision.latency_ns is not None:
                latencies[(*key, latency_bucket(decision.latency_ns))] += 1
    _upsert(DecisionRollup._meta.db_table, [], [], counts)
    _upsert(ReasonRollup._meta.db_table, ["reason"], ["text"], reasons)
    _upsert(LatencyRollup._meta.db_table, ["latency_bucket"], ["smallint"], latencies)


def _upsert(table: str, extra: list[str], extra_types: list[str], counts: Counter) -> None:
    if not counts:
        return
    columns = DIMENSIONS + extra
    # Sorted, so concurrent workers lock rows in the same order and cannot deadlock.
    rows = sorted(counts.items(), key=lambda item: tuple("" if v is None else str(v) for v in item[0]))
    arrays = [list(values) for values in zip(*(key for key, _ in rows))] + [[n for _, n in rows]]
    unnest = ", ".join(f"%s::{kind}[]" for kind in SQL_TYPES + extra_types + ["bigint"])
    names = ", ".join(f'"{c}"' for c in columns)
    conflict = ", ".join(f'"{c}"' for c in columns)
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {table} ({names}, decisions) SELECT * FROM unnest({unnest}) "
            f"ON CONFLICT ({conflict}) DO UPDATE SET decisions = {table}.decisions + EXCLUDED.decisions",
            arrays,
        )


def rebuild(since: datetime | None = None) -> None:
    """Recount the rollups from stored decisions (from `since`, else all): for upgrades and repairs."""
    where = "WHERE timestamp >= %(since)s" if since else ""
    cols = "granularity, period, environment, policy_id, version_id, outcome, effective_mode"
    bucket = f"floor(ln(greatest(latency_ns, 1)::float8) / ln(2) * {BUCKETS_PER_DOUBLING} + 0.5)::smallint"
    with connection.cursor() as cursor:
        for model in (DecisionRollup, ReasonRollup, LatencyRollup):
            cursor.execute(f"DELETE FROM {model._meta.db_table} " + ("WHERE period >= %(since)s" if since else ""),
                           {"since": since})
        for granularity, unit in ((MINUTE, "minute"), (HOUR, "hour"), (DAY, "day")):
            dims = (f"{int(granularity)}, date_trunc('{unit}', timestamp, 'UTC'), environment, policy_id, version_id, "
                    f"outcome, effective_mode")
            group = f"GROUP BY {dims.split(', ', 1)[1]}"
            cursor.execute(f"INSERT INTO {DecisionRollup._meta.db_table} ({cols}, decisions) "
                           f"SELECT {dims}, count(*) FROM audit_decision {where} {group}", {"since": since})
            cursor.execute(
                f"INSERT INTO {ReasonRollup._meta.db_table} ({cols}, reason, decisions) "
                f"SELECT {dims}, reason, count(*) FROM audit_decision "
                f"CROSS JOIN LATERAL (SELECT DISTINCT unnest(reasons) AS reason) r {where} {group}, reason",
                {"since": since})
            latency_where = f"{where} {'AND' if where else 'WHERE'} latency_ns IS NOT NULL"
            cursor.execute(f"INSERT INTO {LatencyRollup._meta.db_table} ({cols}, latency_bucket, decisions) "
                           f"SELECT {dims}, {bucket}, count(*) FROM audit_decision {latency_where} "
                           f"{group}, {bucket}", {"since": since})


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
