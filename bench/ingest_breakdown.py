#!/usr/bin/env python
"""Where one decision's ingest time goes, on the table the last audit_scale run left (10M rows).

    .venv/bin/python scripts/stack.py exec --profile bench -- .venv/bin/python bench/ingest_breakdown.py

It needs the database `bench/audit_scale.py` fills (gavel_bench) and leaves it as it was: every
statement is rolled back. For live traffic (the newest milliseconds, in order), per decision:
  1. Python: each step of building the rows for COPY (audit.ingest.rows.decision_from_event and
     its parts, core.store.copy_row, the JSON parse), best of three over 20,000 events;
  2. Postgres: EXPLAIN ANALYZE of the storing statement (core.store.STORE_CLAIMED) for batches of
     500, taken apart (claiming the ids in the registry, the rows with their indexes, each rollup),
     the median of eight batches after two to warm up; beside the baseline, a raw COPY of the same
     rows into the same table;
  3. the version resolver and its timeline of publications, beside 0, 900, 10,000 and 100,000 of them,
     against reading their whole history.
It vacuums the table first, as autovacuum would have (`audit_scale` deletes the rows its ingest
runs stored). Between runs on the same table claiming an id has taken 15 to 203 µs a decision
(2026-12-03, with and without that vacuum): the registry's index pages come from Postgres's
buffers, the OS cache or the disk, as what ran before left them. Compare parts within one run.
Figures go to bench/results/ingest_breakdown.md. `audit_scale` measures the whole pipeline's rate.
"""
import json
import os
import platform
import random
import statistics
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import audit_scale as scale  # noqa: E402  (its helpers; it sets up Django on gavel_bench)

from django.contrib.auth import get_user_model  # noqa: E402
from django.db import connection, transaction  # noqa: E402

from audit import masking  # noqa: E402
from audit.ingest import contract  # noqa: E402
from audit.ingest.rows import decision_from_event  # noqa: E402
from audit.ingest.versions import VersionResolver, read_timeline  # noqa: E402
from core import facts, store  # noqa: E402
from core.models import Decision  # noqa: E402
from fleet.models import Environment  # noqa: E402
from policies.models import PolicyVersion, Publication  # noqa: E402

RESULTS = scale.ROOT / "bench" / "results" / "ingest_breakdown.md"
EVENTS, BATCH, BATCHES, WARM_UP = 20_000, 500, 8, 2


def live_events(count: int, seed: int, offset_ms: int = 0) -> list[dict]:
    rng = random.Random(seed)
    return [scale.event(rng, n, scale.NOW - timedelta(milliseconds=count - n + offset_ms)) for n in range(count)]


def per_decision(fn, count: int) -> float:
    """Best of three, µs a decision."""
    best = float("inf")
    for _ in range(3):
        started = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - started)
    return best / count * 1e6


def python_steps() -> list[tuple[str, float]]:
    events = live_events(EVENTS, seed=1)
    body = json.dumps(events).encode()
    resolver, rules = VersionResolver(), masking.rules()
    decisions = [decision_from_event(e, resolver, None, rules) for e in events]
    received_at = datetime.now(UTC)  # one time for the batch, as store.insert stamps it
    skipped = {"id", "policy_id", "received_at", "search"}  # Decision.new sets these itself
    fields = {f.attname: getattr(decisions[0], f.attname) for f in Decision._meta.concrete_fields
              if f.attname not in skipped}
    return [(label, per_decision(fn, EVENTS)) for label, fn in (
        ("parse the batch's JSON (contract.loads; once at upload, again in the worker)", lambda: contract.loads(body)),
        ("build the row (decision_from_event), in all", lambda: [decision_from_event(e, resolver, None, rules)
                                                                  for e in events]),
        ("  of which: the input and result made storable", lambda: [(contract.storable(e["input"]),
                                                                     contract.storable(e["result"])) for e in events]),
        ("  of which: the searchable facts (facts.extract)", lambda: [facts.extract(e["input"], []) for e in events]),
        ("  of which: the model instance (Decision.new, every field given)",
         lambda: [Decision.new(policy=None, **fields) for _ in range(EVENTS)]),
        ("  of which: the policy version resolved", lambda: [resolver.resolve(e["path"], e["result"],
                                                                               contract.timestamp_of(e), None, "prod")
                                                              for e in events]),
        ("the row's values for COPY (store.copy_row, JSON text)",
         lambda: [store.copy_row(d, received_at) for d in decisions]),
    )]


def timed_parts(plan: dict) -> dict[str, float]:
    """ms of each part of the storing statement, from its EXPLAIN ANALYZE (JSON)."""
    found: dict[str, dict] = {}

    def walk(node):
        if node["Node Type"] == "ModifyTable":
            found[node["Relation Name"]] = node
        for child in node.get("Plans", []):
            walk(child)

    walk(plan["Plan"])
    claimed = found["audit_decision_id"]["Actual Total Time"]
    stored = found["audit_decision"]
    feeding = stored["Plans"][0]["Actual Total Time"]  # the join of staged and claimed rows, the claim in it
    return {
        "claim each id in the registry of stored ids (one btree)": claimed,
        "join the staged rows with the claimed ids": feeding - claimed,
        "insert the rows: heap, 17 index entries, the uniqueness check": stored["Actual Total Time"] - feeding,
        "count into the decision rollups and their latency histograms (minute, hour, day)":
            found["audit_decisionrollup"]["Actual Total Time"],
        "count into the reason rollups": found["audit_reasonrollup"]["Actual Total Time"],
        "the whole statement (EXPLAIN's execution time)": plan["Execution Time"],
    }


def resolver_steps(counts=(0, 900, 10_000, 100_000)) -> list[tuple[int, float, float]]:
    """ms to read the version resolver's timeline for a live decision, beside `counts`
    confirmed publications (one per OPA instance per publish) spread over the last 30 days, made for
    the measure and rolled back; beside the baseline, reading the whole history (what every batch
    read before 2026-12-03 17:00, and what one whose decisions go back before its first does). A
    batch builds the resolver once, and reads the timeline only when a decision reports no version."""
    timings = []
    with transaction.atomic():
        user = get_user_model().objects.create_user("bench-breakdown")
        environments = list(Environment.objects.all()) or [Environment.objects.create(name="bench")]
        versions = list(PolicyVersion.objects.all())
        now = datetime.now(UTC)
        for count in counts:
            made = Publication.objects.count()
            Publication.objects.bulk_create(Publication(
                version=versions[n % len(versions)], policy_id=versions[n % len(versions)].policy_id,
                environment=environments[n % len(environments)], target_url="http://opa:8181",
                status=Publication.Status.OK, confirmed_at=now - timedelta(days=30) * (1 - n / count),
                requested_by=user)
                for n in range(made, count))
            bounded, whole = [], []
            for _ in range(10):
                started = time.perf_counter()
                read_timeline(now)  # as VersionResolver.timeline_for(now) does on first need
                bounded.append(time.perf_counter() - started)
                started = time.perf_counter()
                read_timeline(None)
                whole.append(time.perf_counter() - started)
            timings.append((count, statistics.median(bounded) * 1000, statistics.median(whole) * 1000))
        transaction.set_rollback(True)
    return timings


def postgres_steps() -> tuple[list[tuple[str, float]], float]:
    samples: dict[str, list[float]] = {}
    copies = []
    for number in range(WARM_UP + BATCHES):
        decisions = scale.as_decisions(live_events(BATCH, seed=100 + number, offset_ms=-BATCH * (number + 1)))
        with transaction.atomic():
            store.prepare(decisions)
            copy_ms = scale.raw_copy(decisions) * 1000
            transaction.set_rollback(True)
        with transaction.atomic(), connection.cursor() as cursor:
            store.prepare(decisions)
            cursor.execute(f"CREATE TEMPORARY TABLE IF NOT EXISTS incoming_decision ON COMMIT DELETE ROWS AS "
                           f"SELECT {store.COPY_COLUMNS} FROM {Decision._meta.db_table} WITH NO DATA")
            received_at = datetime.now(UTC)
            with cursor.cursor.copy(f"COPY incoming_decision ({store.COPY_COLUMNS}) FROM STDIN") as copy:
                for decision in decisions:
                    copy.write_row(store.copy_row(decision, received_at))
            cursor.execute("EXPLAIN (ANALYZE, FORMAT JSON) " + store.STORE_CLAIMED)
            plan = cursor.fetchone()[0][0]
            transaction.set_rollback(True)
        if number >= WARM_UP:
            copies.append(copy_ms)
            for label, ms in timed_parts(plan).items():
                samples.setdefault(label, []).append(ms)
    rows = [(label, statistics.median(ms) / BATCH * 1000) for label, ms in samples.items()]
    return rows, statistics.median(copies) / BATCH * 1000


def main() -> None:
    scale.migrated()
    with connection.cursor() as cursor:
        cursor.execute("SELECT coalesce(sum(reltuples), 0)::bigint FROM pg_class c JOIN pg_inherits i "
                       "ON i.inhrelid = c.oid WHERE i.inhparent = 'audit_decision'::regclass")
        rows = cursor.fetchone()[0]
    if rows < 100_000:
        sys.exit(f"gavel_bench holds about {rows:,} decisions: run bench/audit_scale.py first")
    scale.settle()
    load = os.getloadavg()
    python, (postgres, copy_us), resolver = python_steps(), postgres_steps(), resolver_steps()
    statement_us = dict(postgres)["the whole statement (EXPLAIN's execution time)"]
    built_us = sum(us for label, us in python if not label.startswith("  "))
    lines = [
        "# Ingest at 10M rows: where one decision's time goes", "",
        "`.venv/bin/python scripts/stack.py exec --profile bench -- .venv/bin/python bench/ingest_breakdown.py`", "",
        f"Run {datetime.now(UTC):%Y-%m-%d %H:%M} UTC on {platform.node()}: {os.cpu_count()} cores, Linux "
        f"{platform.release()}, Python {platform.python_version()}; about {rows:,} decisions in the table "
        f"(left by the last `audit_scale` run, vacuumed first); "
        f"load average {load[0]:.1f} / {load[1]:.1f} / {load[2]:.1f} before. "
        "The machine is shared: compare the parts with each other and with the baseline.", "",
        f"Live traffic (the newest milliseconds, in order), µs a decision. Python: best of three over "
        f"{EVENTS:,} events. Postgres: EXPLAIN ANALYZE of the storing statement, batches of {BATCH}, the median "
        f"of {BATCHES}, rolled back.", "",
        "| step | µs a decision |", "| --- | --- |",
        *(f"| {label.replace('  of which', '… of which')} | {us:.0f} |" for label, us in python),
        *(f"| Postgres: {label} | {us:.0f} |" for label, us in postgres),
        f"| **baseline**: raw COPY of the same rows into the same table | {copy_us:.0f} |", "",
        f"The storing statement takes **{statement_us / copy_us:.1f}x** the raw COPY of its rows; building the "
        f"rows and their COPY values in Python (the parse counted once) another {built_us:.0f} µs. "
        "Not in these figures: staging the upload, the COPY into the staging table, the commit, the held "
        "actions (about 1 % of decisions), the worker's queue.", "",
        "The timeline of publications the version resolver reads for a live decision, once a batch "
        "and only if one of its decisions reports no version, beside confirmed publications spread over 30 days "
        "(one per OPA instance per publish; made for the measure, rolled back), median of 10, against the "
        "baseline of reading their whole history:", "",
        "| publications | timeline for a live decision | whole history (baseline) | baseline / timeline |",
        "| --- | --- | --- | --- |",
        *(f"| {count:,} | {ms:.1f} ms ({ms * 1000 / BATCH:.0f} µs a decision in a batch of {BATCH}) | "
          f"{whole:.1f} ms | {whole / ms:.1f}x |" for count, ms, whole in resolver),
    ]
    RESULTS.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
