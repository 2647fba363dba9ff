"""How far a streaming replica falls behind while decisions are written, and what it costs to read there.

On the stack profile's Postgres, a replica is started (scripts/stack.py start_replica: pg_basebackup -R,
hot standby). Decision-shaped rows (about 700 bytes of JSON each, like the export benchmark's) are
written to a table of their own on the primary:

- **one transaction** of N rows at a time: how long the primary takes to commit it (the baseline), and
  how long after the commit the replica has replayed it (waiting on its replay LSN);
- **sustained**: transactions of 2,000 rows back to back for a while (as the ingest worker writes
  batches), with the replica's lag measured every 0.2 s the way core/replica.py measures it;
- **reads**: the same aggregate over the last hour, on the primary and on the replica, while idle.

    python scripts/stack.py exec --profile test5 -- .venv/bin/python bench/replica_lag.py --profile test5
"""
from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import threading
import time
from datetime import datetime, timezone
from pathlib import Path

import django
import psycopg

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "scripts")]
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "console.settings")
django.setup()

import stack  # noqa: E402  (scripts/stack.py)

from core.replica import LAG_SQL  # noqa: E402

RESULTS = ROOT / "bench" / "results" / "replica_lag.md"
TABLE = "bench_replica_decision"
WRITE = f"""
INSERT INTO {TABLE} (decision_id, ts, input, result, outcome)
SELECT md5(random()::text || i), now() - (i %% 3600) * interval '1 second',
    jsonb_build_object('user', jsonb_build_object('id', 'u-' || (i %% 400), 'role', 'analyst'),
        'agent', jsonb_build_object('id', 'agent-' || (i %% 12), 'model', 'gpt-x'), 'tool', 'search.web',
        'args', jsonb_build_object('query', 'sha256:' || md5(i::text) || md5((i + 1)::text)),
        'token_budget', 1000 + (i * 37) %% 9000, 'environment', 'prod'),
    jsonb_build_object('allow', i %% 5 <> 0, 'effective_mode', 'enforce', 'policy_version', 3,
        'reasons', CASE WHEN i %% 5 = 0 THEN jsonb_build_array('token budget exceeded') ELSE '[]'::jsonb END),
    CASE WHEN i %% 5 = 0 THEN 'deny' ELSE 'allow' END
FROM generate_series(1, %s) AS i
"""
READ = f"SELECT outcome, count(*) FROM {TABLE} WHERE ts > now() - interval '1 hour' GROUP BY outcome"


def replayed(replica, lsn: str) -> bool:
    return replica.execute("SELECT pg_last_wal_replay_lsn() >= %s::pg_lsn", [lsn]).fetchone()[0]


def one_transaction(primary, replica, rows: int) -> tuple[float, float]:
    started = time.perf_counter()
    primary.execute(WRITE, [rows])
    lsn = primary.execute("SELECT pg_current_wal_lsn()::text").fetchone()[0]  # autocommit: committed
    committed = time.perf_counter()
    while not replayed(replica, lsn):
        time.sleep(0.002)
    return committed - started, time.perf_counter() - committed


def sustained(primary, replica, seconds: float, rows: int = 2000) -> dict:
    lags, stop = [], threading.Event()

    def sample():
        while not stop.is_set():
            lags.append(replica.execute(LAG_SQL).fetchone()[2])
            time.sleep(0.2)

    sampler = threading.Thread(target=sample)
    sampler.start()
    written, started = 0, time.perf_counter()
    while time.perf_counter() - started < seconds:
        primary.execute(WRITE, [rows])
        written += rows
    elapsed = time.perf_counter() - started
    lsn = primary.execute("SELECT pg_current_wal_lsn()::text").fetchone()[0]
    ended = time.perf_counter()
    while not replayed(replica, lsn):
        time.sleep(0.002)
    caught_up = time.perf_counter() - ended
    stop.set()
    sampler.join()
    lags.sort()
    return {"rows": written, "rate": written / elapsed, "p50": statistics.median(lags),
            "p95": lags[int(len(lags) * 0.95) - 1], "max": lags[-1], "samples": len(lags), "caught_up": caught_up}


def read_ms(conn, repeat: int = 15) -> float:
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        conn.execute(READ).fetchall()
        times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser()
    here = next((name for name, profile in stack.PROFILES.items()
                 if str(profile.home) == os.environ.get("GAVEL_STACK_HOME")), "bench")
    parser.add_argument("--profile", default=here, choices=stack.PROFILES, help="the stack it runs in (its replica's port)")
    parser.add_argument("--sizes", type=int, nargs="+", default=[1_000, 10_000, 100_000])
    parser.add_argument("--seconds", type=float, default=20)
    args = parser.parse_args()
    profile = stack.PROFILES[args.profile]
    load_before = os.getloadavg()
    replica_url = stack.start_replica(profile, fresh=True)
    try:
        with psycopg.connect(os.environ["DATABASE_URL"], autocommit=True) as primary, \
                psycopg.connect(replica_url, autocommit=True) as replica:
            primary.execute(f"DROP TABLE IF EXISTS {TABLE}")
            primary.execute(f"CREATE TABLE {TABLE} (id bigserial PRIMARY KEY, decision_id text, ts timestamptz, "
                            f"input jsonb, result jsonb, outcome text)")
            primary.execute(f"CREATE INDEX ON {TABLE} (ts)")
            single = {}
            for rows in args.sizes:
                runs = [one_transaction(primary, replica, rows) for _ in range(3)]
                single[rows] = (statistics.median(r[0] for r in runs), statistics.median(r[1] for r in runs))
                print(f"{rows:,} rows: commit {single[rows][0]:.3f}s, replayed {single[rows][1]:.3f}s later", flush=True)
            steady = sustained(primary, replica, args.seconds)
            print(f"sustained: {steady}", flush=True)
            time.sleep(1)
            total = primary.execute(f"SELECT count(*) FROM {TABLE}").fetchone()[0]
            reads = (read_ms(primary), read_ms(replica))
            version = primary.execute("SHOW server_version").fetchone()[0]
            primary.execute(f"DROP TABLE {TABLE}")
    finally:
        stack.stop_replica(profile)
    write(args, single, steady, reads, total, version, load_before, os.getloadavg())


def write(args, single, steady, reads, total, version, load_before, load_after) -> None:
    load = lambda values: " / ".join(f"{v:.1f}" for v in values)  # noqa: E731
    lines = [
        "# Read replica: replay lag under writes, and reads there", "",
        f"Command: `.venv/bin/python scripts/stack.py exec --profile {args.profile} -- .venv/bin/python "
        f"bench/replica_lag.py --profile {args.profile}`  ",
        f"Machine: {platform.machine()}, {os.cpu_count()} cores (shared), Python {platform.python_version()}, "
        f"PostgreSQL {version}, primary and replica on the same machine; {datetime.now(timezone.utc):%Y-%m-%d %H:%M} "
        f"UTC; load average {load(load_before)} before, {load(load_after)} after", "",
        "Decision-shaped rows (about 700 bytes of JSON each) written on the primary; the replica is a hot standby "
        "streaming from it (`pg_basebackup -R`). Baseline: the primary's own commit of the same transaction.", "",
        "## One transaction", "",
        "| rows | primary commits in | replica has replayed it after the commit | after / commit |",
        "| --- | --- | --- | --- |",
    ]
    for rows, (commit, after) in single.items():
        lines.append(f"| {rows:,} | {commit * 1000:,.0f} ms | {after * 1000:,.0f} ms | {after / commit:.2f}x |")
    lines += [
        "", f"## Sustained writes for {args.seconds:.0f} s", "",
        f"Transactions of 2,000 rows back to back: {steady['rows']:,} rows at {steady['rate']:,.0f} rows/s. "
        f"The replica's lag as core/replica.py measures it, every 0.2 s ({steady['samples']} samples): "
        f"p50 {steady['p50']:.2f} s, p95 {steady['p95']:.2f} s, max {steady['max']:.2f} s; it had replayed the "
        f"last commit {steady['caught_up'] * 1000:,.0f} ms after it. Bound in Gavel: "
        "`GAVEL_REPLICA_MAX_LAG_SECONDS` (5 s).", "",
        "## Reads", "",
        f"Counting the last hour by outcome over {total:,} rows, median of 15, while idle: primary "
        f"{reads[0]:.1f} ms, replica {reads[1]:.1f} ms ({reads[1] / reads[0]:.2f}x).",
    ]
    RESULTS.write_text("\n".join(lines) + "\n")
    print(f"wrote {RESULTS.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
