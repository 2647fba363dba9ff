#!/usr/bin/env python
"""Export throughput and memory: Gavel's decision export against Postgres's own COPY of the same rows.

Generates N agent-gateway decisions with one INSERT ... SELECT over generate_series (inputs,
results, reasons and the searchable columns shaped like the demo traffic's), then exports the
search `path=gavel/bench_export` through exports.services exactly as the console does:

- streamed: the generator the streamed download sends (stream_export): the ZIP archive with the data
  file (written to a scratch GAVEL_EXPORT_DIR meanwhile, as it is kept for downloading again) and the
  signed manifest; the archive's bytes are discarded;
- job: run_job, which writes the file under the scratch GAVEL_EXPORT_DIR like the Celery task does;
- data only: the file's bytes as exports.services produces them (COPY, record ends, SHA-256), to /dev/null;

each as CSV and JSON Lines, against `COPY (SELECT <the same columns> ... ORDER BY timestamp, id)
TO STDOUT WITH (FORMAT csv, HEADER)` read through psycopg. Peak Python memory (tracemalloc, in a
separate pass, since tracing slows everything) is taken for a quarter of the rows and for all
of them: constant memory means the two peaks stay alike. The rows are deleted at the end.

Needs a migrated-or-migratable Postgres (DATABASE_URL); the stack script provides one:

    .venv/bin/python scripts/stack.py exec --profile test6 -- .venv/bin/python bench/export_throughput.py --rows 200000
"""
import argparse
import os
import platform
import resource
import sys
import tempfile
import time
import tracemalloc
from datetime import datetime, timedelta, timezone
from pathlib import Path
from urllib.parse import urlencode

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "scripts")]
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "console.settings")
os.environ.setdefault("DEBUG", "1")

import django  # noqa: E402

django.setup()

from django.conf import settings  # noqa: E402
from django.contrib.auth.models import Group, User  # noqa: E402
from django.core.management import call_command  # noqa: E402
from django.db import connection  # noqa: E402

from core import partitions, queue  # noqa: E402
from exports import services as exports  # noqa: E402
from exports.models import ExportRecord  # noqa: E402
from baselines import export_copy  # noqa: E402  (bench/, beside this file)

RESULTS = ROOT / "bench" / "results" / "export_throughput.md"
PATH = "gavel/bench_export/decision"
QUERY = "path=gavel/bench_export"
RUNS = 3

# Realistic agent-gateway decisions, varied by the row number i (see console/demo/traffic.py).
GENERATE = """
INSERT INTO audit_decision (decision_id, timestamp, path, input, result, outcome, reasons, version_source,
    effective_mode, exception_ids, masked, approval_ref, labels, bundles, latency_ns, requested_by, received_at,
    environment, instance, "user", agent, action, resource, search_text)
SELECT 'bench-export-' || i, %(base)s::timestamptz + i * interval '1 second', %(path)s,
    jsonb_build_object(
        'user', jsonb_build_object('id', 'u-' || (i %% 400), 'role', (ARRAY['analyst','engineer','admin'])[1 + i %% 3]),
        'agent', jsonb_build_object('id', 'agent-' || (i %% 12), 'model', 'gpt-x'),
        'tool', (ARRAY['search.web','db.query','email.send','files.delete'])[1 + i %% 4],
        'args', jsonb_build_object('query', 'sha256:' || md5(i::text) || md5((i + 1)::text)),
        'token_budget', 1000 + (i * 37) %% 9000, 'environment', (ARRAY['dev','staging','prod'])[1 + i %% 3]),
    jsonb_build_object('allow', i %% 5 <> 0, 'effective_mode', 'enforce', 'policy_version', 3,
        'reasons', CASE WHEN i %% 5 = 0 THEN jsonb_build_array('token budget exceeded') ELSE '[]'::jsonb END,
        'require_approval', false, 'exceptions_applied', '[]'::jsonb),
    CASE WHEN i %% 5 = 0 THEN 'deny' ELSE 'allow' END,
    CASE WHEN i %% 5 = 0 THEN ARRAY['token budget exceeded'] ELSE ARRAY[]::text[] END,
    'reported', 'enforce', ARRAY[]::bigint[], ARRAY['args.query=hash'], '',
    '{"id": "opa-bench", "environment": "prod", "instance": "opa-a"}'::jsonb, '{}'::jsonb,
    200000 + (i * 7919) %% 900000, '', now(), 'prod', 'opa-a', 'u-' || (i %% 400), 'agent-' || (i %% 12),
    (ARRAY['search.web','db.query','email.send','files.delete'])[1 + i %% 4], '',
    CASE WHEN i %% 5 = 0 THEN 'token budget exceeded ' ELSE '' END || 'u-' || (i %% 400)
FROM generate_series(1, %(rows)s) AS i
"""


def generate(rows: int) -> datetime:
    base = datetime.now(timezone.utc) - timedelta(days=30)
    # One row a second from `base`: the weekly partitions those seconds fall in, made first.
    partitions.ensure(("prod", base + timedelta(days=day)) for day in range(rows // 86400 + 2))
    with connection.cursor() as cursor:
        cursor.execute("DELETE FROM audit_decision WHERE path = %s", [PATH])
        cursor.execute(GENERATE, {"base": base, "path": PATH, "rows": rows})
    with connection.cursor() as cursor:  # now, or autovacuum visits the new rows during the measurements
        cursor.execute("VACUUM (ANALYZE) audit_decision")
    return base


def copy_seconds(since: datetime | None = None) -> tuple[float, int]:
    sql = export_copy("d.path LIKE 'gavel/bench_export%%'" + (" AND d.timestamp >= %s" if since else ""))
    started, size = time.perf_counter(), 0
    connection.ensure_connection()
    with connection.connection.cursor() as cursor, cursor.copy(sql, [since] if since else None) as copy:
        for block in copy:
            size += len(block)
    return time.perf_counter() - started, size


def exporter() -> User:
    user, _ = User.objects.get_or_create(username="bench-exporter")
    user.groups.add(Group.objects.get(name="auditor"))
    return User.objects.get(pk=user.pk)  # fresh, without a stale permission cache


def streamed(user, fmt: str, query: str = QUERY) -> tuple[float, ExportRecord]:
    record = exports.start_export(user, query, fmt)
    assert record.delivery == ExportRecord.Delivery.STREAM
    started = time.perf_counter()
    for _ in exports.stream_export(record):
        pass
    return time.perf_counter() - started, record


def job(user, fmt: str) -> tuple[float, ExportRecord]:
    record = exports.start_export(user, QUERY, fmt, as_job=True)
    started = time.perf_counter()
    record = exports.run_job(record.pk)  # what the Celery task runs; on_commit already fired (autocommit)
    return time.perf_counter() - started, record


def data_only(user, fmt: str) -> tuple[float, ExportRecord]:
    record = exports.start_export(user, QUERY, fmt, as_job=True)
    started = time.perf_counter()
    with open(os.devnull, "wb") as out:
        tally = exports._Tally(out)
        for _ in exports._chunks(record, tally):
            pass
    record.row_count, record.size_bytes = tally.rows, tally.size
    return time.perf_counter() - started, record


def peak_memory(user, fmt: str, query: str) -> tuple[int, int]:
    tracemalloc.start()
    tracemalloc.reset_peak()
    _, record = streamed(user, fmt, query)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return peak, record.row_count


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument("--profile", default="bench", help="the stack profile it ran on (make bench: bench), for the results file")
    args = parser.parse_args()

    call_command("migrate", verbosity=0)
    settings.GAVEL_EXPORT_STREAM_MAX_ROWS = args.rows * 2  # measure the streamed path at full size too
    settings.GAVEL_EXPORT_DIR = Path(tempfile.mkdtemp(prefix="gavel-bench-exports-"))
    # run_job is called directly below, in this process; enqueueing the Celery task too would
    # leave it in Redis for whichever worker comes next.
    queue.after_commit = lambda name, *args: None

    started = time.perf_counter()
    base = generate(args.rows)
    print(f"generated {args.rows:,} decisions in {time.perf_counter() - started:.1f}s", flush=True)
    user = exporter()
    try:
        # Best of three, each export too: on a shared machine one run swings by a third either way.
        # COPY runs before each export, so its best is taken over the same stretch of time.
        copies, results = [], []
        for fmt in ("csv", "jsonl"):
            for kind, run in (("streamed (archive)", streamed), ("job (file)", job), ("data only", data_only)):
                copies.append(copy_seconds())
                seconds, record = min((run(user, fmt) for _ in range(RUNS)), key=lambda timed: timed[0])
                assert record.row_count == args.rows, (record.row_count, args.rows)
                results.append((fmt, kind, seconds, record.size_bytes))
                print(f"{fmt} {kind}: {seconds:.2f}s, {args.rows / seconds:,.0f} rows/s", flush=True)
        copy_time, copy_bytes = min(copies)
        print(f"COPY: {copy_time:.2f}s, {args.rows / copy_time:,.0f} rows/s", flush=True)
        quarter = urlencode({"since": (base + timedelta(seconds=args.rows * 3 // 4)).isoformat()})
        memory = []
        for fmt in ("csv", "jsonl"):
            for query in (f"{QUERY}&{quarter}", QUERY):
                peak, rows = peak_memory(user, fmt, query)
                memory.append((fmt, rows, peak))
                print(f"{fmt} peak traced memory at {rows:,} rows: {peak / 2**20:.1f} MiB", flush=True)
        maxrss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    finally:
        with connection.cursor() as cursor:
            cursor.execute("DELETE FROM audit_decision WHERE path = %s", [PATH])
        ExportRecord.objects.filter(created_by=user).delete()
        for file in Path(settings.GAVEL_EXPORT_DIR).glob("*"):
            file.unlink()
    write(args, copy_time, copy_bytes, results, memory, maxrss)


def write(args, copy_time, copy_bytes, results, memory, maxrss) -> None:
    copy_rate = args.rows / copy_time
    with connection.cursor() as cursor:
        cursor.execute("SHOW server_version")
        pg_version = cursor.fetchone()[0]
    lines = [
        "# Export throughput", "",
        f"Command: `.venv/bin/python scripts/stack.py exec --profile {args.profile} -- .venv/bin/python "
        f"bench/export_throughput.py --rows {args.rows}`  ",
        f"Machine: {platform.machine()}, {os.cpu_count()} cores (shared with other work while this ran), "
        f"Python {platform.python_version()}, PostgreSQL {pg_version}; "
        f"{datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC", "",
        f"{args.rows:,} agent-gateway decisions generated by one `INSERT ... SELECT` over `generate_series`, "
        "exported as the search `path=gavel/bench_export` through `exports.services`: *streamed (archive)* is "
        "the generator the streamed download sends (the ZIP with the data file, deflated at level 1, and the "
        "signed manifest; the data file also written and fsynced to disk to be downloaded again), *job* is "
        "`run_job` writing and fsyncing the file as the Celery task does, *data only* is the file's bytes "
        "produced and hashed, then discarded. The baseline is Postgres's "
        "`COPY (SELECT <the same 23 columns> ... ORDER BY timestamp, id) TO STDOUT WITH (FORMAT csv, HEADER)` "
        "read through psycopg in the same run, once before each export (best of those six); each export is the best of three runs. Gavel's export is itself one `COPY (SELECT ...) TO "
        "STDOUT (FORMAT csv)` whose SELECT gives each decision's CSV cells, formulas neutralised (COPY's own "
        "writer quotes them), or its JSON line built by Postgres; Python only ends each CSV record with CRLF, "
        "hashes, writes and streams the bytes. Target (issue 17): at least 0.5x COPY for CSV and JSON Lines.",
        "",
        "| export | seconds | rows / second | MB | Gavel / COPY (target 0.5) |",
        "| --- | --- | --- | --- | --- |",
        f"| COPY ... TO STDOUT (csv) | {copy_time:.2f} | {copy_rate:,.0f} | {copy_bytes / 1e6:.1f} | 1.00 |",
    ]
    for fmt, kind, seconds, size in results:
        rate = args.rows / seconds
        verdict = "met" if rate / copy_rate >= 0.5 else "not met"
        lines.append(f"| Gavel {fmt}, {kind} | {seconds:.2f} | {rate:,.0f} | {size / 1e6:.1f} "
                     f"| {rate / copy_rate:.2f} ({verdict}) |")
    lines += [
        "", "Peak Python memory during a streamed export (tracemalloc, separate pass): constant memory means "
        "it does not grow with the rows.", "",
        "| format | rows | peak traced memory |", "| --- | --- | --- |",
    ]
    lines += [f"| {fmt} | {rows:,} | {peak / 2**20:.1f} MiB |" for fmt, rows, peak in memory]
    lines += ["", f"Whole process, including Django and the {args.rows:,}-row generation: "
                  f"ru_maxrss {maxrss / 1024:.0f} MiB."]
    RESULTS.write_text("\n".join(lines) + "\n")
    print(f"wrote {RESULTS.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
