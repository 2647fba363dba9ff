"""Per-minute, per-hour and per-day rollups of stored decisions, which the dashboard's charts read instead of raw rows.

Ingest adds each batch's fresh decisions to the rollups in the statement that stores them
(Postgres counts them: core/store.py), so the counts are exact: a redelivered batch adds
nothing, a failed one nothing either.
Latency is kept as a histogram (log-spaced buckets, 8 per doubling, so within ~4.5 % of the
true value) because percentiles of minutes cannot be combined, but histograms can. Each decision
rollup row holds its own ({bucket: decisions}, jsonb), added to on conflict by
gavel_histogram_add() (migration core.0010): a batch upserts a row a key, not a row a key and bucket.
"""
from __future__ import annotations

import math
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta

from django.db import connections
from django.db.models import Q, QuerySet
from django.utils import timezone

from .models import DecisionRollup, ReasonRollup

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
# NULL for a decision OPA did not time (greatest() alone would put it in bucket 0).
TIMED_BUCKET = f"CASE WHEN d.latency_ns IS NOT NULL THEN {LATENCY_BUCKET} END"


def counting_statements(source: str) -> list[str]:
    """The INSERTs that count the decisions of `source` (a table, subquery or WITH name with at
    least COUNTED_COLUMNS) into the rollups, each decision in its minute, hour and UTC day.

    Counts (and histograms) add to what is there. Rows are upserted in key order, so workers
    storing at the same time lock them in the same order and cannot deadlock."""
    periods = ", ".join(f"({int(granularity)}, '{unit}')" for granularity, unit in GRANULARITIES)
    dims = ("g.granularity, date_trunc(g.unit, d.timestamp, 'UTC'), d.environment, d.policy_id, d.version_id, "
            "d.outcome, d.effective_mode")
    periods_of = f"FROM {source} AS d CROSS JOIN (VALUES {periods}) AS g(granularity, unit)"
    columns = ", ".join(f'"{column}"' for column in COLUMNS)
    keys = ", ".join(str(n) for n in range(1, len(COLUMNS) + 1))
    decisions, reasons = DecisionRollup._meta.db_table, ReasonRollup._meta.db_table
    named = ", ".join(f"k{n}" for n in range(1, len(COLUMNS) + 1))  # the key's columns, in the subquery
    return [
        # Counted per key and latency bucket first, then each key's buckets folded into its histogram.
        (f"INSERT INTO {decisions} ({columns}, decisions, latency) "
         f"SELECT {named}, sum(n), coalesce(jsonb_object_agg(bucket, n) FILTER (WHERE bucket IS NOT NULL), '{{}}') "
         f"FROM (SELECT {dims}, {TIMED_BUCKET}, count(*) {periods_of} GROUP BY {keys}, {len(COLUMNS) + 1}) "
         f"AS per_bucket({named}, bucket, n) "
         f"GROUP BY {keys} ORDER BY {keys} "
         f"ON CONFLICT ({columns}) DO UPDATE SET decisions = {decisions}.decisions + EXCLUDED.decisions, "
         f"latency = gavel_histogram_add({decisions}.latency, EXCLUDED.latency)"),
        (f"INSERT INTO {reasons} ({columns}, \"reason\", decisions) "
         f"SELECT {dims}, r.reason, count(*) {periods_of} "
         f"CROSS JOIN LATERAL (SELECT DISTINCT unnest(d.reasons) AS reason) AS r "
         f"GROUP BY {keys}, {len(COLUMNS) + 1} ORDER BY {keys}, {len(COLUMNS) + 1} "
         f"ON CONFLICT ({columns}, \"reason\") DO UPDATE SET decisions = {reasons}.decisions + EXCLUDED.decisions"),
    ]


EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def length(granularity: int) -> timedelta:
    return timedelta(minutes=int(granularity))  # a granularity's value is its length in minutes


def floor_to(moment: datetime, step: timedelta) -> datetime:
    """The start of the UTC minute, hour or day `moment` falls in."""
    return moment - (moment - EPOCH) % step


def ceil_to(moment: datetime, step: timedelta) -> datetime:
    floor = floor_to(moment, step)
    return floor if floor == moment else floor + step


def between(first, last) -> Q:
    """Periods from `first` up to `last`; None leaves that side open."""
    return Q(**{lookup: bound for lookup, bound in (("period__gte", first), ("period__lt", last)) if bound})


def tiers(since: datetime | None, until: datetime | None, coarsest: int = DAY) -> list[tuple[int, Q]]:
    """The fewest rollup rows that count [since, until) (whole minutes; None: open) exactly, as
    (granularity, a range of its rows), coarsest first: the window's whole periods of the coarsest
    size, then of each finer size the parts before and after them (at most five ranges). From 06:13
    to 18:00, per hour: the minutes to 07:00, then hour rows."""
    found, gaps = [], [tuple(bound and bound.astimezone(UTC) for bound in (since, until))]
    for granularity in (DAY, HOUR, MINUTE):
        if granularity > coarsest:
            continue
        step, left = length(granularity), []  # left: the parts this size's whole periods do not cover
        for start, end in gaps:
            first, last = start and ceil_to(start, step), end and floor_to(end, step)
            if first and last and first >= last:
                left.append((start, end))  # no whole period of this size inside
                continue
            found.append((granularity, Q(between(first, last), granularity=granularity)))
            left += [gap for gap in ((start, first), (last, end)) if gap[0] and gap[0] != gap[1]]
        gaps = left
    return found


def covering(since: datetime | None, until: datetime | None, coarsest: int = DAY) -> Q:
    """The rollup rows that count [since, until) exactly, the coarsest that fit (tiers())."""
    either = Q()
    for _, periods in tiers(since, until, coarsest):
        either |= periods
    return either


def rebuild(since: datetime | None = None) -> None:
    """Recount the rollups from stored decisions (from the start of `since`'s UTC day, else all):
    for upgrades and repairs. From a day's start, so its day rows are recounted whole."""
    if since:
        since = since.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    source = "(SELECT * FROM audit_decision WHERE timestamp >= %(since)s)" if since else "audit_decision"
    with connections["default"].cursor() as cursor:
        for model in (DecisionRollup, ReasonRollup):
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
    for model in (DecisionRollup, ReasonRollup):
        model.objects.filter(environment=environment, period__gte=start, period__lt=end).delete()


def latency_histograms(rows: QuerySet, *keys: str) -> dict[tuple, dict[int, int]]:
    """{(the keys' values): {bucket: decisions}} of DecisionRollup `rows`, their histograms summed
    per key in Postgres. `keys` name columns or annotations of `rows` (e.g. "bucket", "policy_id")."""
    sql, params = rows.order_by().values(*keys, "latency").query.sql_with_params()
    named = ", ".join(f'r."{key}"' for key in keys)
    statement = (f"SELECT {named}{', ' if keys else ''}h.key::smallint, sum(h.value::bigint) FROM ({sql}) AS r "
                 f"CROSS JOIN LATERAL jsonb_each_text(r.latency) AS h GROUP BY {named}{', ' if keys else ''}h.key")
    histograms: dict[tuple, dict[int, int]] = {}
    with connections[rows.db].cursor() as cursor:
        cursor.execute(statement, params)
        for *key, bucket, n in cursor.fetchall():
            # Trunc* annotations come out of SQL as local times without a zone; the ORM would make
            # them aware in the current time zone, as here.
            key = tuple(timezone.make_aware(v) if isinstance(v, datetime) and timezone.is_naive(v) else v for v in key)
            histograms.setdefault(key, {})[bucket] = int(n)
    return histograms
