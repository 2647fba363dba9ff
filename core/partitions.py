"""Decision storage in Postgres partitions: one per environment, split by week.

`audit_decision` is partitioned by LIST (environment); each environment's partition is
partitioned by RANGE (timestamp) in weeks starting on Mondays, 00:00 UTC. Searches with a
time range touch only the weeks they cover, and retention (per environment) drops whole
weeks instead of deleting rows one by one.

Partitions are created when the first decision for them arrives (`ensure`), so a clock
far off or a new environment needs nothing from an operator.
"""
from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.db import IntegrityError, ProgrammingError, connection, transaction
from psycopg import sql

PARENT = "audit_decision"
WEEK = timedelta(days=7)
MONDAY = datetime(1970, 1, 5, tzinfo=UTC)
LAST_WEEK = datetime.max.replace(tzinfo=UTC) - WEEK


def week_start(moment: datetime) -> datetime:
    return MONDAY + WEEK * ((moment.astimezone(UTC) - MONDAY) // WEEK)


def week_end(start: datetime) -> datetime:
    # The last week before year 10000 ends where Python's dates do (a clock can say anything).
    return start + WEEK if start < LAST_WEEK else datetime.max.replace(tzinfo=UTC)


def environment_table(environment: str) -> str:
    # Environment names are free text; the table name only needs to be stable and safe.
    return f"{PARENT}_e{hashlib.sha256(environment.encode()).hexdigest()[:12]}"


def week_table(environment: str, start: datetime) -> str:
    return f"{environment_table(environment)}_w{start:%Y%m%d}"


def weeks_of(keys: Iterable[tuple[str, datetime]]) -> set[tuple[str, datetime]]:
    """The (environment, start of week) of each (environment, timestamp) pair."""
    weeks, week = set(), None
    for environment, moment in keys:
        # A batch spans few weeks, mostly in runs: a decision in the same week as the one before it
        # is two comparisons, not the arithmetic of week_start.
        if week is None or environment != week[0] or not week[1] <= moment < week[2]:
            start = week_start(moment)
            week = (environment, start, week_end(start))
            weeks.add((environment, start))
    return weeks


def ensure(keys: Iterable[tuple[str, datetime]]) -> int:
    """Create the partitions these (environment, timestamp) pairs need; returns how many were made."""
    wanted = {week_table(environment, start): (environment, start) for environment, start in weeks_of(keys)}
    if not wanted:
        return 0
    with connection.cursor() as cursor:
        cursor.execute("SELECT name FROM unnest(%s::text[]) AS name WHERE to_regclass(name) IS NULL", [list(wanted)])
        missing = [row[0] for row in cursor.fetchall()]
    for name in missing:
        _create(*wanted[name])
    return len(missing)


def as_text(statement: sql.Composable, cursor) -> str:
    """The statement as SQL text: Django's cursor wrappers (and pghistory's) expect strings."""
    return statement.as_string(cursor.cursor.connection)


def _create(environment: str, start: datetime) -> None:
    env_table, table = environment_table(environment), week_table(environment, start)
    statements = [
        (env_table, sql.SQL("CREATE TABLE IF NOT EXISTS {} PARTITION OF {} FOR VALUES IN ({}) "
                            "PARTITION BY RANGE (timestamp)").format(
            sql.Identifier(env_table), sql.Identifier(PARENT), sql.Literal(environment))),
        (table, sql.SQL("CREATE TABLE IF NOT EXISTS {} PARTITION OF {} FOR VALUES FROM ({}) TO ({})").format(
            sql.Identifier(table), sql.Identifier(env_table), sql.Literal(start), sql.Literal(week_end(start)))),
    ]
    for name, statement in statements:
        try:
            # A savepoint, so losing a race with another worker does not spoil an outer transaction.
            with transaction.atomic(), connection.cursor() as cursor:
                cursor.execute(as_text(statement, cursor))
        except (IntegrityError, ProgrammingError):
            with connection.cursor() as cursor:  # created concurrently: fine, as long as it exists now
                cursor.execute("SELECT to_regclass(%s)", [name])
                if cursor.fetchone()[0] is None:
                    raise


@dataclass(frozen=True)
class WeekPartition:
    environment: str
    table: str
    start: datetime

    @property
    def end(self) -> datetime:
        return week_end(self.start)


def week_partitions() -> list[WeekPartition]:
    """Every week partition, with the environment it belongs to (read from Postgres's catalog)."""
    query = """
        SELECT env_bound.expr, week.relname, week_bound.expr
        FROM pg_inherits top
        JOIN pg_class env ON env.oid = top.inhrelid
        JOIN pg_inherits sub ON sub.inhparent = env.oid
        JOIN pg_class week ON week.oid = sub.inhrelid
        CROSS JOIN LATERAL (SELECT pg_get_expr(env.relpartbound, env.oid) AS expr) env_bound
        CROSS JOIN LATERAL (SELECT pg_get_expr(week.relpartbound, week.oid) AS expr) week_bound
        WHERE top.inhparent = %s::regclass
    """
    partitions = []
    with connection.cursor() as cursor:
        cursor.execute(query, [PARENT])
        rows = cursor.fetchall()
        for env_expr, table, week_expr in rows:
            # Bounds read back as: FOR VALUES IN ('prod') / FOR VALUES FROM ('...') TO ('...')
            cursor.execute("SELECT (regexp_match(%s, $$IN \\('(.*)'\\)$$))[1], "
                           "(regexp_match(%s, $$FROM \\('([^']*)'\\)$$))[1]::timestamptz", [env_expr, week_expr])
            environment, start = cursor.fetchone()
            partitions.append(WeekPartition(environment.replace("''", "'"), table, start))
    return sorted(partitions, key=lambda p: (p.environment, p.start))


def retention_days(environment: str) -> int:
    """Days decisions of this environment are kept (0: forever), from GAVEL_DECISION_RETENTION."""
    rules = {}
    for item in settings.GAVEL_DECISION_RETENTION.split(","):
        if not item.strip():
            continue
        name, _, days = item.partition("=")
        if not days.strip().isdigit():
            raise ImproperlyConfigured(
                f"GAVEL_DECISION_RETENTION: {item.strip()!r} should be environment=days (or *=days)")
        rules[name.strip()] = int(days)
    return rules.get(environment, rules.get("*", 0))


def expired(now: datetime | None = None) -> list[WeekPartition]:
    """Week partitions whose every decision is older than their environment's retention."""
    now = now or datetime.now(UTC)
    found = []
    for partition in week_partitions():
        days = retention_days(partition.environment)
        if days and partition.end <= now - timedelta(days=days):
            found.append(partition)
    return found


def drop(partition: WeekPartition) -> None:
    """Drop a week of decisions, and what points at them, in one transaction."""
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(as_text(
            sql.SQL("UPDATE audit_heldaction SET logged_decision_id = NULL "
                    "WHERE logged_decision_id IN (SELECT id FROM {})").format(sql.Identifier(partition.table)), cursor))
        cursor.execute(as_text(sql.SQL("DROP TABLE {}").format(sql.Identifier(partition.table)), cursor))
        # Their ids are free again: a decision sent after its week was dropped is stored, as before.
        cursor.execute("DELETE FROM audit_decision_id WHERE environment = %s AND timestamp >= %s AND timestamp < %s",
                       [partition.environment, partition.start, partition.end])
