#!/usr/bin/env python
"""The audit trail at 1 and 10 million decisions: ingest, search and charts, each against a baseline.

Run inside a stack (it uses the stack's Postgres, in a database of its own, `gavel_bench`):

    .venv/bin/python scripts/stack.py exec --profile bench -- .venv/bin/python bench/audit_scale.py [--sizes 1000000 10000000]

For each size it
  1. fills the table to that size with generated decisions shaped like the demo traffic
     (3 environments, 30 days, 20 % denied with realistic reasons, log-normal latency), in time
     order as a fleet writes them (each size's new rows spread over the 30 days), by raw COPY
     (indexes built after the bulk of it, as a restore would) and rebuilds the rollups;
  2. ingest: a sample of decision events goes through Gavel's pipeline (gzip batches of 500
     as OPA uploads them -> stage_batch -> store_batch: parse, resolve versions, mask, COPY +
     ON CONFLICT, rollups) in one process, against a raw COPY of the same rows into the same
     table (then removed again), and into a lean table (primary key and a BRIN on time only,
     the physical limit). Twice: as live traffic (the newest minutes, in the order a fleet
     uploads them) and as a backfill (times spread over the 30 days, every partition touched).
     During the live run, the index study: the pages each index of the table touched, and
     how many of them came from outside Postgres's buffers;
  3. search, once VACUUM (ANALYZE) has left the table as autovacuum would: p50/p95 of the common
     searches through `audit.filters.DecisionFilter` as the page runs them (first page of 50,
     newest first) and the count the page shows (capped),
     and which indexes each search read (the index study's other half);
  4. charts: each chart's aggregate from the rollups against the same aggregate over the raw
     rows, for all 30 days and for the last day, per bucket as the dashboard draws them
     (a day for 30 days, an hour for the last day: charts._bucket);
  5. export: the last two days' decisions (about 1/15 of the table) exported as CSV by
     Gavel's export job (exports.services.run_job: COPY, file, SHA-256, manifest) against
     `COPY (SELECT the same columns ...) TO STDOUT` of the same rows, each best of two, and the
     job's peak Python memory (tracemalloc, in a pass of its own: tracing slows Python down).
Figures go to bench/results/audit_scale.md.
"""
import argparse
import gzip
import json
import math
import os
import platform
import random
import statistics
import sys
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "scripts")]
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "console.settings")
os.environ.setdefault("DEBUG", "1")
BASE_URL = os.environ.get("DATABASE_URL", "postgres://gavel@127.0.0.1:30329/gavel")
os.environ["DATABASE_URL"] = BASE_URL.rsplit("/", 1)[0] + "/gavel_bench"

import psycopg  # noqa: E402

import django  # noqa: E402

django.setup()

from django.core.management import call_command  # noqa: E402
from django.db import connection  # noqa: E402
from django.http import QueryDict  # noqa: E402

from audit import charts
from exports import services as exports
from core import queue, rollups  # noqa: E402
from audit.filters import DecisionFilter  # noqa: E402
from audit.ingest import stage_batch, store_batch  # noqa: E402
from core.store import COPY_COLUMNS, copy_row  # noqa: E402
from core.models import Decision, LogBatch, Outcome  # noqa: E402
from audit.pagination import COUNT_LIMIT, CappedPaginator  # noqa: E402
from console.demo.traffic import random_request  # noqa: E402
from baselines import export_copy  # noqa: E402  (bench/, beside this file)

RESULTS = ROOT / "bench" / "results" / "audit_scale.md"
# The generated history ends when the run starts: the search page's windows (the newest day, week
# and month) and the charts' ranges count back from the real clock, as they would over live data.
NOW = datetime.now(UTC).replace(microsecond=0)
DAYS = 30
ENVIRONMENTS = ["prod", "prod", "prod", "staging", "dev"]
DENY_REASONS = [
    "token budget exceeded for this agent", "tool is not on the agent's allow list",
    "deleting production data needs an approved change ticket", "bucket must be encrypted at rest",
    "argument query contains the forbidden pattern \"drop table\"", "user is suspended",
    "service accounts may not call external tools", "resource is outside the agent's project",
]
SECONDARY_INDEXES: list[tuple[str, str]] = []


def event(rng: random.Random, n: int, when: datetime | None = None) -> dict:
    """One decision event as OPA logs it; at `when`, else at a random time in the 30 days."""
    path, document = random_request(rng)
    roll = rng.random()
    if roll < 0.72:
        allow, reasons, extra = True, [], {}
    elif roll < 0.92:
        allow, reasons, extra = False, rng.sample(DENY_REASONS, rng.choice([1, 1, 1, 2])), {}
    elif roll < 0.99:
        allow, reasons, extra = False, rng.sample(DENY_REASONS, 1), {}
    else:  # about 1 % held for a person: each becomes a held action with its notifications
        allow, reasons, extra = False, ["production deletes need a reviewer"], {"require_approval": True}
    mode = "dry-run" if rng.random() < 0.1 else "enforce"
    environment = rng.choice(ENVIRONMENTS)
    return {
        "decision_id": str(uuid.UUID(int=rng.getrandbits(128))),
        "timestamp": (when or NOW - timedelta(seconds=rng.random() * DAYS * 86400)).isoformat(),
        "path": path.strip("/").removeprefix("v1/data/"),
        "input": document,
        "result": {"allow": allow, "reasons": reasons, "effective_mode": mode, **extra},
        "labels": {"id": f"opa-{environment}-{n % 4}", "instance": f"{environment}-{n % 4}",
                   "environment": environment, "version": "1.22.2"},
        "metrics": {"timer_rego_query_eval_ns": int(rng.lognormvariate(12.5, 0.6))},
    }


def as_decisions(events: list[dict]) -> list[Decision]:
    from audit.ingest import VersionResolver, decision_from_event

    resolver = VersionResolver()
    return [decision_from_event(e, resolver, None) for e in events]


def raw_copy(decisions: list[Decision], table: str = "audit_decision") -> float:
    """COPY the rows straight into `table`; seconds taken."""
    started = time.perf_counter()
    received_at = datetime.now(UTC)
    with connection.cursor() as cursor, cursor.cursor.copy(f"COPY {table} ({COPY_COLUMNS}) FROM STDIN") as copy:
        for decision in decisions:
            copy.write_row(copy_row(decision, received_at))
    return time.perf_counter() - started


def lean_copy(decisions: list[Decision]) -> float:
    """The physical limit: COPY of the same rows into a table with the same columns (the full-text
    column generated as in audit_decision) but only a primary key and a BRIN index on time."""
    with connection.cursor() as cursor:
        cursor.execute("DROP TABLE IF EXISTS bench_lean_decision")
        cursor.execute("CREATE TABLE bench_lean_decision (LIKE audit_decision INCLUDING DEFAULTS INCLUDING GENERATED)")
        cursor.execute("ALTER TABLE bench_lean_decision ADD PRIMARY KEY (id)")
        cursor.execute("CREATE INDEX ON bench_lean_decision USING brin (timestamp)")
    try:
        return raw_copy(decisions, "bench_lean_decision")
    finally:
        with connection.cursor() as cursor:
            cursor.execute("DROP TABLE bench_lean_decision")


# Each index of audit_decision, summed over its copies in the leaf partitions (environment, then
# week), and those of the registry of stored ids that ingest's duplicate check reads.
INDEX_STATS = """
SELECT parent.relname, sum(io.idx_blks_read)::bigint, sum(io.idx_blks_hit)::bigint, sum(uses.idx_scan)::bigint
FROM pg_class parent
JOIN pg_index pi ON pi.indexrelid = parent.oid AND pi.indrelid = 'audit_decision'::regclass
CROSS JOIN LATERAL pg_partition_tree(parent.oid) AS tree
JOIN pg_statio_user_indexes io ON io.indexrelid = tree.relid
JOIN pg_stat_user_indexes uses ON uses.indexrelid = tree.relid
WHERE tree.isleaf
GROUP BY parent.relname
UNION ALL
SELECT io.indexrelname, io.idx_blks_read, io.idx_blks_hit, uses.idx_scan
FROM pg_statio_user_indexes io JOIN pg_stat_user_indexes uses USING (indexrelid)
WHERE io.relname = 'audit_decision_id'
"""


def index_stats() -> dict[str, tuple[int, int, int]]:
    """{index: (blocks read from outside shared buffers, blocks found in them, scans)} so far."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_stat_force_next_flush()")  # this session's counts, now, not within a second
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_stat_clear_snapshot()")
        cursor.execute(INDEX_STATS)
        return {name: tuple(int(v or 0) for v in values) for name, *values in cursor.fetchall()}


def index_delta(before: dict, after: dict) -> dict[str, tuple[int, ...]]:
    return {name: tuple(a - b for a, b in zip(after[name], before.get(name, (0, 0, 0)))) for name in after}


FILL_SQL = """
INSERT INTO audit_decision (decision_id, timestamp, path, input, result, outcome, reasons, policy_id, version_id,
    version_source, effective_mode, exception_ids, masked, approval_ref, labels, bundles, latency_ns, requested_by,
    received_at, environment, instance, "user", agent, action, resource, search_text)
SELECT md5(%(seed)s || '-' || g)::uuid::text, ts, p.path,
    jsonb_build_object('user', jsonb_build_object('id', usr), 'agent', jsonb_build_object('id', agt),
                       'tool', tool, 'token_budget', (r3 * 12000)::int, 'resource_type', res),
    jsonb_build_object('allow', outcome = 'allow', 'reasons', to_jsonb(reasons), 'effective_mode', mode),
    outcome, reasons, p.policy_id, p.version_id, 'reported', mode, '{}', '{}', '',
    jsonb_build_object('id', 'opa-' || env || '-' || (g %% 4), 'instance', env || '-' || (g %% 4),
                       'environment', env),
    '{}', exp(12.5 + 0.6 * sqrt(-2 * ln(1 - r4)) * cos(2 * pi() * r5))::bigint, '', ts, env,
    env || '-' || (g %% 4), usr, agt, tool, res, array_to_string(reasons || ARRAY[tool, res, usr, agt], E'\n')
FROM generate_series(%(first)s, %(last)s) g
CROSS JOIN LATERAL (SELECT random() + g * 0 AS r1, random() + g * 0 AS r2, random() + g * 0 AS r3,
                           random() + g * 0 AS r4, random() + g * 0 AS r5, random() + g * 0 AS r6) r
CROSS JOIN LATERAL (SELECT
    %(now)s::timestamptz - (1 - (g - %(start)s + r6) / %(span)s) * %(days)s * interval '1 day' AS ts,
    (ARRAY['prod', 'prod', 'prod', 'staging', 'dev'])[1 + (r2 * 5)::int %% 5] AS env,
    'u-' || (r3 * 500)::int AS usr,
    (ARRAY['research-bot', 'data-analyst', 'support-agent', 'deploy-bot'])[1 + (r5 * 4)::int %% 4] AS agt,
    (ARRAY['search.web', 'sql.query', 'email.send', 'files.delete', 'k8s.apply'])[1 + (r4 * 5)::int %% 5] AS tool,
    (ARRAY['database', 'bucket', 'cluster', 'mailbox'])[1 + (r1 * 4)::int %% 4] AS res,
    CASE WHEN r2 < 0.1 THEN 'dry-run' ELSE 'enforce' END AS mode) v
CROSS JOIN LATERAL (SELECT
    CASE WHEN r1 < 0.72 THEN 'allow' WHEN r1 < 0.99 THEN (CASE WHEN v.mode = 'dry-run' THEN 'would_deny' ELSE 'deny' END)
         ELSE 'require_approval' END AS outcome,
    CASE WHEN r1 < 0.72 THEN ARRAY[]::text[]
         WHEN r1 < 0.99 THEN ARRAY[(%(reasons)s::text[])[1 + (r3 * 1000)::int %% %(reason_count)s]]
         ELSE ARRAY['production deletes need a reviewer'] END AS reasons) o
CROSS JOIN LATERAL (SELECT * FROM (VALUES %(policies)s) AS x(policy_id, version_id, path)
                    ORDER BY (x.policy_id = %(first_policy)s) = (r5 < 0.8) DESC LIMIT 1) p
"""


def fill(target: int, seed: int) -> dict:
    """Grow the table to `target` rows, generated in Postgres (secondary indexes dropped meanwhile)."""
    from core import partitions
    from policies.models import Policy

    have = Decision.objects.count()
    policies = [(p.pk, p.latest_version.pk, f"{p.data_path}/decision")
                for p in Policy.objects.order_by("pk")]
    values = ", ".join(f"({pk}, {version}, '{path}')" for pk, version, path in policies)
    partitions.ensure((env, NOW - timedelta(days=day)) for env in set(ENVIRONMENTS) for day in range(DAYS + 8))
    drop_indexes()
    first_id = _next_id()
    started, made = time.perf_counter(), 0
    while have + made < target:
        chunk = min(1_000_000, target - have - made)
        with connection.cursor() as cursor:
            cursor.execute(FILL_SQL.replace("%(policies)s", values), {"seed": seed, "first": have + made, "last": have + made + chunk - 1,
                                      "now": NOW, "days": DAYS, "start": have, "span": target - have,
                                      "reasons": DENY_REASONS,
                                      "reason_count": len(DENY_REASONS),
                                      "first_policy": policies[0][0]})
        made += chunk
        print(f"  filled {have + made:,}", flush=True)
    with connection.cursor() as cursor:  # the ids are registered as ingest registers them
        cursor.execute("INSERT INTO audit_decision_id (decision_id, environment, timestamp) "
                       "SELECT decision_id, environment, timestamp FROM audit_decision WHERE id >= %s", [first_id])
    loaded = time.perf_counter() - started
    started = time.perf_counter()
    restore_indexes()
    indexed = time.perf_counter() - started
    started = time.perf_counter()
    rollups.rebuild()
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE audit_decision")
    return {"rows": made, "load_s": loaded, "index_s": indexed, "rollup_s": time.perf_counter() - started}


def settle() -> None:
    """Vacuum as autovacuum would have by now: a table searched straight after its fill has no
    visibility map (each index-only scan reads the heap too) and dead rows from the ingest runs,
    which made the 1M searches slower than the 10M ones (growth under 1x) in earlier runs."""
    with connection.cursor() as cursor:
        cursor.execute("VACUUM (ANALYZE) audit_decision, audit_decision_id")


def migrated() -> None:
    """Bring a table an earlier run left up to the code's schema: the benches that reuse it
    (ingest_breakdown, pages_at_scale) read it through today's models."""
    call_command("migrate", verbosity=0)


def drop_indexes() -> None:
    with connection.cursor() as cursor:
        cursor.execute("SELECT indexname, indexdef FROM pg_indexes WHERE tablename = 'audit_decision' "
                       "AND indexname NOT IN (SELECT conname FROM pg_constraint WHERE conrelid = 'audit_decision'::regclass)")
        SECONDARY_INDEXES.extend(cursor.fetchall())
        for name, _ in SECONDARY_INDEXES:
            cursor.execute(f'DROP INDEX "{name}"')
        cursor.execute("ALTER TABLE audit_decision_id DROP CONSTRAINT audit_decision_id_pkey")


def restore_indexes() -> None:
    with connection.cursor() as cursor:
        cursor.execute("SET maintenance_work_mem = '512MB'")
        for _, definition in SECONDARY_INDEXES:
            # pg_indexes shows a partitioned index as ON ONLY (the parent alone); build it on every partition.
            cursor.execute(definition.replace(" ON ONLY ", " ON "))
        cursor.execute("ALTER TABLE audit_decision_id ADD PRIMARY KEY (decision_id)")
    SECONDARY_INDEXES.clear()


def ingest(sample: int, seed: int, live: bool) -> dict:
    """The same events through Gavel's pipeline, by raw COPY into the same table and into a lean one;
    rows per second of each. Live: the newest minutes, in order (a fleet of OPAs uploading every
    few seconds); else a backfill, times spread over the 30 days."""
    rng = random.Random(seed)
    events = [event(rng, n, NOW - timedelta(milliseconds=sample - n) if live else None) for n in range(sample)]
    decisions = as_decisions(events)
    first_id = _next_id()
    copy_s = raw_copy(decisions)
    with connection.cursor() as cursor:
        cursor.execute("DELETE FROM audit_decision WHERE id >= %s", [first_id])
    lean_s = lean_copy(decisions)
    bodies = [gzip.compress(json.dumps(events[i:i + 500]).encode()) for i in range(0, sample, 500)]
    before = index_stats()
    started = time.perf_counter()
    stored = 0
    for body in bodies:
        batch = stage_batch(body, json.loads(gzip.decompress(body)), "127.0.0.1")
        stored += store_batch(batch.pk).stored_count
    pipeline_s = time.perf_counter() - started
    touched = index_delta(before, index_stats())
    assert stored == sample, (stored, sample)
    LogBatch.objects.all().delete()
    with connection.cursor() as cursor:  # the next run (and the searches) meet the table as filled
        uncount(cursor, first_id)
        cursor.execute("DELETE FROM audit_decision_id AS r USING audit_decision AS d "
                       "WHERE d.id >= %s AND r.decision_id = d.decision_id", [first_id])
        cursor.execute("DELETE FROM audit_decision WHERE id >= %s", [first_id])
    return {"sample": sample, "copy_rate": sample / copy_s, "lean_rate": sample / lean_s,
            "pipeline_rate": sample / pipeline_s, "indexes": touched}


def uncount(cursor, first_id: int) -> None:
    """Take the decisions from `first_id` on back out of the rollups, as if never stored: the charts'
    check compares rollups with raw rows. The rollups' own upserts, each count negated."""
    for statement in rollups.counting_statements("(SELECT * FROM audit_decision WHERE id >= %(first)s)"):
        cursor.execute(statement.replace("count(*)", "-count(*)"), {"first": first_id})
    for table in ("audit_decisionrollup", "audit_reasonrollup"):
        cursor.execute(f"DELETE FROM {table} WHERE decisions = 0")


def _next_id() -> int:
    with connection.cursor() as cursor:
        cursor.execute("SELECT nextval('audit_decision_ids')")
        return cursor.fetchone()[0] + 1


def timed(fn, repeat: int) -> tuple[float, float]:
    samples = []
    for _ in range(repeat):
        started = time.perf_counter()
        fn()
        samples.append((time.perf_counter() - started) * 1000)
    samples.sort()
    # nearest rank: with 100 samples the 95th, the sixth slowest (with 20 it is the second slowest)
    return statistics.median(samples), samples[math.ceil(0.95 * len(samples)) - 1]


def searches() -> dict[str, str]:
    probe = Decision.objects.order_by().filter(outcome=Outcome.DENY).values("user", "decision_id", "policy__name",
                                                                           "agent").first()
    day = (NOW - timedelta(days=1)).strftime("%Y-%m-%dT%H:%M")
    return {
        "newest, no filter": "",
        "outcome=deny": "outcome=deny",
        "policy": f"policy={probe['policy__name']}",
        "last 24 h": f"since={day}",
        "user": f"user={probe['user']}",
        "agent + deny": f"agent={probe['agent']}&outcome=deny",
        "reason (exact)": f"reason={DENY_REASONS[0]}",
        "full text": "q=encrypted",
        "decision id": f"decision_id={probe['decision_id']}",
    }


def measure_search(repeat: int) -> list[tuple]:
    rows = []
    for label, query in searches().items():
        filterset = DecisionFilter(QueryDict(query), queryset=Decision.objects.for_rows())  # as the page runs it
        if not filterset.is_valid():
            rows.append((label, query, None, None, None, None, f"invalid: {filterset.errors.as_text()}", {}))
            continue
        unknown = set(QueryDict(query)) - set(filterset.filters)
        decisions = filterset.qs
        before = index_stats()
        few = DecisionFilter.finds_few(QueryDict(query))
        page = timed(lambda: list(CappedPaginator(decisions, 50, few=few).page(1).object_list), repeat)
        count = timed(lambda: CappedPaginator(decisions, 50, few=few).count, max(3, repeat // 4))
        scans = {name: delta[2] for name, delta in index_delta(before, index_stats()).items() if delta[2]}
        rows.append((label, query, *page, *count, f"not a filter here: {', '.join(unknown)}" if unknown else "",
                     scans))
    return rows


def measure_charts(repeat: int) -> list[tuple]:
    """Each chart as the dashboard draws it: its step is the page's own (charts._bucket)."""
    rows = []
    for label, query in (("30 days", ""), ("last day", f"since={(NOW - timedelta(days=1)):%Y-%m-%dT%H:%M}")):
        filterset = DecisionFilter(QueryDict(query), queryset=Decision.objects.all())
        assert filterset.is_valid()
        rolled, raw = charts.source_for(filterset), charts.RawRows(filterset.qs, (filterset.form.cleaned_data.get("since"), None))
        assert isinstance(rolled, charts.RolledUp)
        step = charts._bucket(rolled)
        per = {charts.MINUTE: "minute", charts.HOUR: "hour", charts.DAY: "day"}[step]
        for chart, run in (
            ("volume by outcome", lambda s: s.counts(step)),
            ("top deny reasons", lambda s: s.reasons(charts.DENIED, limit=10)),
            ("latency p50/95/99", lambda s: s.latency(step)),
        ):
            assert len(run(rolled)) == len(run(raw)), chart
            rollup_ms, raw_ms = timed(lambda: run(rolled), repeat)[0], timed(lambda: run(raw), max(2, repeat // 5))[0]
            rows.append((label, f"{chart}, per {per}" if chart != "top deny reasons" else chart, rollup_ms, raw_ms))
    return rows


def measure_export() -> dict:
    """Gavel's export job against Postgres's COPY of the same rows; peak Python memory of the job."""
    import tracemalloc

    from django.contrib.auth.models import Group, User

    from exports.models import ExportRecord

    since = NOW - timedelta(days=2)
    user, _ = User.objects.get_or_create(username="bench-exporter")
    user.groups.add(Group.objects.get(name="auditor"))
    user = User.objects.get(pk=user.pk)
    queue.after_commit = lambda name, *args: None  # run the job here, not in Celery

    def copy_seconds() -> float:
        started = time.perf_counter()
        connection.ensure_connection()
        with connection.connection.cursor() as cursor, cursor.copy(export_copy("d.timestamp >= %s"), [since]) as copy:
            for _ in copy:
                pass
        return time.perf_counter() - started

    def job() -> tuple[float, ExportRecord]:
        record = exports.start_export(user, f"since={since:%Y-%m-%dT%H:%M}", "csv", as_job=True)
        started = time.perf_counter()
        record = exports.run_job(record.pk)
        return time.perf_counter() - started, record

    # Each timed twice, best of two (the first pass warms the cache for the second);
    # the memory in a pass of its own, since tracing every allocation slows Python down.
    copy_s, export_s = min(copy_seconds(), copy_seconds()), min(job()[0], job()[0])
    tracemalloc.start()
    _, record = job()
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return {"rows": record.row_count, "export_rate": record.row_count / export_s,
            "copy_rate": record.row_count / copy_s, "peak_mib": peak / 2**20, "bytes": record.size_bytes}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1_000_000, 10_000_000])
    parser.add_argument("--sample", type=int, default=100_000, help="events per ingest comparison")
    parser.add_argument("--repeat", type=int, default=20, help="runs of each chart")
    parser.add_argument("--search-repeat", type=int, default=100,
                        help="runs of each search: its p95 needs about 100 (of 20, it is the second slowest)")
    args = parser.parse_args()
    # A fresh database each run; here, not on import, so a probe can import these helpers and keep
    # the last run's ten million rows.
    with psycopg.connect(BASE_URL, autocommit=True) as admin:
        admin.execute("DROP DATABASE IF EXISTS gavel_bench")
        admin.execute("CREATE DATABASE gavel_bench")
    call_command("migrate", verbosity=0)
    call_command("seed_demo", verbosity=0)  # the demo policies, so versions resolve as in production

    report = []
    for size in sorted(args.sizes):
        print(f"size {size:,}: filling", flush=True)
        filled = fill(size, seed=size)
        print(f"size {size:,}: ingest", flush=True)
        rates = {"live": ingest(args.sample, seed=size + 1, live=True),
                 "backfill": ingest(args.sample, seed=size + 2, live=False)}
        print(f"size {size:,}: search and charts", flush=True)
        settle()
        searched, charted = measure_search(args.search_repeat), measure_charts(args.repeat)
        print(f"size {size:,}: export", flush=True)
        report.append((size, filled, rates, searched, charted, measure_export()))
    write(report, args)


def write(report, args) -> None:
    cores, memory = os.cpu_count(), os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    with connection.cursor() as cursor:
        cursor.execute("SELECT current_setting('server_version'), current_setting('shared_buffers'), "
                       "current_setting('max_wal_size')")
        server, buffers, wal = cursor.fetchone()
    lines = [
        "# Audit trail at scale", "",
        f"`.venv/bin/python scripts/stack.py exec --profile bench -- .venv/bin/python bench/audit_scale.py "
        f"--sizes {' '.join(map(str, args.sizes))} --sample {args.sample} --repeat {args.repeat} "
        f"--search-repeat {args.search_repeat}`", "",
        f"Run {datetime.now(UTC):%Y-%m-%d %H:%M} UTC on {platform.node()}: {cores} cores, {memory:.0f} GiB, "
        f"Linux {platform.release()}, Postgres {server} (shared_buffers {buffers}, max_wal_size {wal}: "
        f"scripts/stack.py sizes them for the machine). The machine is shared: compare ratios, not absolutes.", "",
    ]
    for size, filled, rates, search_rows, chart_rows, exported in report:
        lines += [
            f"## {size:,} decisions", "",
            f"Filled by raw COPY: {filled['rows']:,} rows in {filled['load_s']:.0f} s, indexes built in "
            f"{filled['index_s']:.0f} s, rollups rebuilt in {filled['rollup_s']:.0f} s.", "",
            f"**Ingest** ({rates['live']['sample']:,} events, one process, gzip batches of 500), decisions/s:", "",
            "| traffic | Gavel's pipeline | raw COPY, same table | raw COPY, lean table | "
            "same table / pipeline | lean / pipeline |", "|---|---|---|---|---|---|",
        ]
        for kind, text in (("live", "live (the newest minutes, in order)"), ("backfill", "backfill (over 30 days)")):
            r = rates[kind]
            lines.append(f"| {text} | {r['pipeline_rate']:,.0f} | {r['copy_rate']:,.0f} | {r['lean_rate']:,.0f} | "
                         f"{r['copy_rate'] / r['pipeline_rate']:.1f}x | {r['lean_rate'] / r['pipeline_rate']:.1f}x |")
        used_by: dict[str, list[str]] = {}
        for row in search_rows:
            for name in row[7]:
                used_by.setdefault(name, []).append(row[0])
        per_thousand = 1000 / rates["live"]["sample"]
        lines += ["", "**Index study** (live ingest): pages of each index touched per 1,000 decisions stored, "
                  "how many came from outside Postgres's shared buffers (the OS cache or the disk), and the "
                  "searches below that read it:", "",
                  "| index | pages touched | from outside | searches that read it |", "|---|---|---|---|"]
        for name, (read, hit, _) in sorted(rates["live"]["indexes"].items(), key=lambda item: -sum(item[1][:2])):
            lines.append(f"| `{name}` | {(read + hit) * per_thousand:,.0f} | {read * per_thousand:,.0f} | "
                         f"{', '.join(used_by.get(name, [])) or '—'} |")
        lines += [
            "", f"**Search** (after VACUUM (ANALYZE) of the table; first page of 50, newest first, "
            f"{args.search_repeat} runs each; and the count the page shows, which stops at {COUNT_LIMIT:,}), ms:", "",
            "| search | query | page p50 | page p95 | count p50 | count p95 | note |", "|---|---|---|---|---|---|---|",
        ]
        for label, query, p50, p95, c50, c95, note, _ in search_rows:
            cells = " | ".join("" if v is None else f"{v:.1f}" for v in (p50, p95, c50, c95))
            lines.append(f"| {label} | `{query}` | {cells} | {note} |")
        lines += ["", "**Charts**, median ms, each per the bucket the dashboard draws (rollups vs the same "
                      "aggregate over raw rows):", "",
                  "| range | chart | rollups | raw rows | raw / rollups |", "|---|---|---|---|---|"]
        for label, chart, rolled, raw in chart_rows:
            lines.append(f"| {label} | {chart} | {rolled:.1f} | {raw:.1f} | {raw / rolled:.0f}x |")
        lines += ["", f"**Export** (the last two days: {exported['rows']:,} decisions, "
                      f"{exported['bytes'] / 2**20:.0f} MiB of CSV, as a job writing its file, best of two): "
                      f"{exported['export_rate']:,.0f} rows/s against COPY TO STDOUT of the same rows "
                      f"{exported['copy_rate']:,.0f} rows/s (**{exported['export_rate'] / exported['copy_rate']:.2f}x** "
                      f"COPY, target 0.5); peak Python memory {exported['peak_mib']:.1f} MiB (traced in a third "
                      f"pass).", ""]
    if len(report) == 2:
        (small, _, _, s_rows, _, s_export), (large, _, _, l_rows, _, l_export) = report
        lines += [f"## Growth from {small:,} to {large:,} ({large // small}x the rows)", "",
                  "| search | page p50 growth | page p95 growth |", "|---|---|---|"]
        for a, b in zip(s_rows, l_rows):
            if a[2] and b[2]:
                lines.append(f"| {a[0]} | {b[2] / a[2]:.1f}x | {b[3] / a[3]:.1f}x |")
        lines += ["", f"Export peak memory: {s_export['peak_mib']:.1f} MiB for {s_export['rows']:,} rows, "
                      f"{l_export['peak_mib']:.1f} MiB for {l_export['rows']:,} rows.", ""]
    RESULTS.write_text("\n".join(lines))
    print(RESULTS.read_text())


if __name__ == "__main__":
    main()
