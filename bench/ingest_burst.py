#!/usr/bin/env python
"""Ingest under a burst: the sustained rate, then ten times that offered for a minute.

Runs the whole pipeline as processes (tests/faults/pipeline.py): OPA shipping its decision logs to
a Gavel web process (gunicorn, 2 workers), a Celery worker and beat, on the Postgres and Redis of
the stack profile it runs in, with a database of its own (`gavel_bench`, created afresh). Load
generators (processes of threads) ask OPA for decisions at a paced rate and keep every decision_id
OPA answered with.

1. Sustained: offered rates doubling from --start-rate, --step-seconds each; a step is kept up
   with when everything it offered is stored within --drain-seconds of its end. The sustained
   rate is the highest offered rate kept up with.
2. Burst: --factor times that, offered for --burst-seconds. Gavel may refuse (429, Retry-After)
   while its backlog is over GAVEL_INGEST_MAX_QUEUED_BATCHES; OPA keeps and retries. Then the
   catch-up time until every decision is stored, and the exact check: the stored decision_ids
   are exactly the ones OPA answered with, none twice.
3. Backlog drill: the web process down for --backlog-seconds while OPA decides at the sustained rate,
   then up: OPA uploads its whole buffer, and Gavel's catch-up rate is its own ingest rate.

    .venv/bin/python scripts/stack.py exec --profile test5 -- .venv/bin/python bench/ingest_burst.py
"""
from __future__ import annotations

import argparse
import http.client
import itertools
import json
import logging
import multiprocessing
import os
import platform
import subprocess
import sys
import tempfile
import threading
import time
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results" / "ingest_burst.md"
BENCH_DB = "gavel_bench"


# --- load generation (in processes of their own) -------------------------------------------------


def generate(opa_url: str, path: str, rate: float, seconds: float, out: str, seed: int, threads: int = 8) -> None:
    """Offer `rate` decisions a second for `seconds`, on schedule, from threads with a keep-alive
    connection each (http.client: several times what httpx does per core). A request past its slot
    goes at once, and nothing is offered after the end, so the achieved rate is at most the target."""
    ids: list[str] = []
    failed = [0]
    total = int(rate * seconds)
    slots = itertools.count()  # next() on it is atomic under the GIL
    host, port = opa_url.removeprefix("http://").split(":")
    start = time.monotonic()
    end = start + seconds

    def one_at_a_time():
        conn = http.client.HTTPConnection(host, int(port), timeout=10)
        while (slot := next(slots)) < total:
            delay = start + slot / rate - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            if time.monotonic() >= end:
                break
            n = seed * 10_000_000 + slot
            body = json.dumps({"input": {"n": n, "user": f"user-{n % 500}", "tool": "search.web",
                                         "tokens": n % 12000}})
            try:
                conn.request("POST", f"/v1/data/{path}", body, {"Content-Type": "application/json"})
                answer = conn.getresponse()
                data = answer.read()
                if answer.status != 200:
                    raise OSError(f"OPA answered {answer.status}")
                ids.append(json.loads(data)["decision_id"])
            except (OSError, http.client.HTTPException):
                failed[0] += 1
                conn.close()  # reconnects on the next request
        conn.close()

    pool = [threading.Thread(target=one_at_a_time) for _ in range(threads)]
    for thread in pool:
        thread.start()
    for thread in pool:
        thread.join()
    Path(out).write_text(json.dumps({"ids": ids, "failed": failed[0], "seconds": time.monotonic() - start}))


def offer(opa_url: str, rate: float, seconds: float, procs: int, tmp: Path, phase: str, sample) -> dict:
    """Run the generators for one phase, sampling Gavel once a second meanwhile."""
    from tests.faults.pipeline import POLICY_PATH

    context = multiprocessing.get_context("spawn")
    outs = [tmp / f"{phase}-{i}.json" for i in range(procs)]
    workers = [context.Process(target=generate, args=(opa_url, POLICY_PATH, rate / procs, seconds, str(out),
                                                      hash((phase, i)) % 1000))
               for i, out in enumerate(outs)]
    for worker in workers:
        worker.start()
    while any(worker.is_alive() for worker in workers):
        sample()
        time.sleep(1)
    results = [json.loads(out.read_text()) for out in outs]
    ids = [i for result in results for i in result["ids"]]
    return {"ids": ids, "failed": sum(r["failed"] for r in results), "seconds": max(r["seconds"] for r in results)}


# --- the run -------------------------------------------------------------------------------------


def bench_database() -> str:
    """A fresh, migrated `gavel_bench` beside the profile's database; its URL."""
    import psycopg

    base = os.environ["DATABASE_URL"]
    with psycopg.connect(base.rsplit("/", 1)[0] + "/postgres", autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {BENCH_DB} WITH (FORCE)")
        conn.execute(f"CREATE DATABASE {BENCH_DB}")
    url = base.rsplit("/", 1)[0] + f"/{BENCH_DB}"
    subprocess.run([sys.executable, str(ROOT / "manage.py"), "migrate", "--noinput"], check=True,
                   env={**os.environ, "DATABASE_URL": url}, stdout=subprocess.DEVNULL)
    return url


def machine() -> str:
    memory = next(line.split()[1] for line in Path("/proc/meminfo").read_text().splitlines()
                  if line.startswith("MemTotal"))
    return (f"{platform.machine()}, {os.cpu_count()} cores, {int(memory) / 1024 / 1024:.0f} GiB RAM, "
            f"Linux {platform.release()} (`uname -r`), Python {platform.python_version()}")


def load_average() -> str:
    return " / ".join(f"{n:.1f}" for n in os.getloadavg())


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--start-rate", type=float, default=100)
    parser.add_argument("--max-rate", type=float, default=6400)
    parser.add_argument("--step-seconds", type=float, default=15)
    parser.add_argument("--drain-seconds", type=float, default=8)
    parser.add_argument("--factor", type=float, default=10)
    parser.add_argument("--burst-seconds", type=float, default=60)
    parser.add_argument("--catch-up-limit", type=float, default=900, help="give up waiting after this long")
    parser.add_argument("--procs", type=int, default=3, help="load generator processes")
    parser.add_argument("--worker-concurrency", type=int, default=2)
    parser.add_argument("--queue-limit", type=int, default=20,
                        help="GAVEL_INGEST_MAX_QUEUED_BATCHES for the run: low, so backpressure engages at this scale")
    parser.add_argument("--backlog-seconds", type=float, default=20,
                        help="the backlog drill: decisions offered while the web process is down")
    parser.add_argument("--no-write", action="store_true", help="print the results, do not write the file")
    args = parser.parse_args()

    if "DATABASE_URL" not in os.environ or "REDIS_URL" not in os.environ:
        raise SystemExit("run it inside a stack: scripts/stack.py exec --profile test5 -- .venv/bin/python " + __file__)
    sys.path[:0] = [str(ROOT), str(ROOT / "scripts")]
    import stack

    os.environ["DATABASE_URL"] = bench_database()
    os.environ["REDIS_URL"] = os.environ["REDIS_URL"].rsplit("/", 1)[0] + "/6"
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "console.settings")
    os.environ.setdefault("OPA_BINARY", str(stack.opa_binary()))
    import django

    django.setup()
    import redis
    from django.conf import settings

    from audit.models import Decision, LogBatch
    from tests.faults.pipeline import FAST_SWEEP, POLICY_PATH, IngestStack

    logging.getLogger("httpx").setLevel(logging.WARNING)
    redis.Redis.from_url(settings.REDIS_URL).flushdb()
    tmp = Path(tempfile.mkdtemp(prefix="gavel-burst-"))
    env = {**os.environ, "GAVEL_OPA_TOKEN": settings.GAVEL_OPA_TOKEN, "SECRET_KEY": settings.SECRET_KEY,
           "LOG_LEVEL": "WARNING", "PYTHONPATH": str(ROOT), **FAST_SWEEP,
           "GAVEL_INGEST_MAX_QUEUED_BATCHES": str(args.queue_limit)}
    pipeline = IngestStack(home=tmp, env=env, worker_concurrency=args.worker_concurrency)
    pipeline.env["OPA_URL"] = pipeline.opa_url
    offered: list[str] = []
    timeline: list[tuple[float, int, int, int]] = []  # (t, stored, queued batches, refused so far)
    started = time.monotonic()
    load_before = load_average()

    def sample() -> tuple[int, int]:
        stored = Decision.objects.filter(path=POLICY_PATH).count()
        queued = LogBatch.objects.filter(status=LogBatch.Status.QUEUED).count()
        timeline.append((time.monotonic() - started, stored, queued, pipeline.answers().get(429, 0)))
        return stored, queued

    def drain(limit: float) -> float | None:
        """Seconds until every decision offered so far is stored, or None past `limit`."""
        begin = time.monotonic()
        while time.monotonic() - begin < limit:
            stored, queued = sample()
            if stored >= len(offered) and not queued:
                return time.monotonic() - begin
            time.sleep(0.5)
        return None

    try:
        pipeline.start_web()
        pipeline.start_worker()
        pipeline.start_beat()
        pipeline.start_opa()
        print(f"pipeline up; logs in {tmp}", flush=True)

        steps = []
        rate = args.start_rate
        sustained = None
        while rate <= args.max_rate:
            result = offer(pipeline.opa_url, rate, args.step_seconds, args.procs, tmp, f"step-{rate:g}", sample)
            offered += result["ids"]
            achieved = len(result["ids"]) / result["seconds"]
            drained = drain(args.drain_seconds)
            steps.append({"target": rate, "achieved": achieved, "decisions": len(result["ids"]),
                          "failed": result["failed"], "drained": drained})
            print(f"step {rate:g}/s: offered {achieved:.0f}/s, drained in {drained}", flush=True)
            if drained is None:
                drain(args.catch_up_limit)  # let it catch up before the burst
                break
            sustained = achieved
            if achieved < 0.9 * rate:
                break  # the generators are the limit now
            rate *= 2
        if sustained is None:
            raise SystemExit("Gavel kept up with no step; lower --start-rate")

        refused_before = pipeline.answers().get(429, 0)
        burst_from = len(timeline)
        burst = offer(pipeline.opa_url, args.factor * sustained, args.burst_seconds, args.procs, tmp, "burst", sample)
        offered += burst["ids"]
        burst_rate = len(burst["ids"]) / burst["seconds"]
        print(f"burst: offered {burst_rate:.0f}/s ({len(burst['ids'])} decisions)", flush=True)
        stored_at_end, queued_at_end = sample()
        catch_up = drain(args.catch_up_limit)
        peak_queue = max(q for _, _, q, _ in timeline[burst_from:])
        refused_burst = pipeline.answers().get(429, 0) - refused_before

        # The backlog drill: Gavel's web process is down while OPA decides at the sustained rate, so
        # OPA holds everything; then Gavel comes back and takes the whole backlog at once.
        pipeline.stop("web")
        held = offer(pipeline.opa_url, sustained, args.backlog_seconds, args.procs, tmp, "backlog", sample)
        offered += held["ids"]
        refused_before = pipeline.answers().get(429, 0)
        backlog_from = len(timeline)
        pipeline.start_web()
        backlog_catch_up = drain(args.catch_up_limit)
        backlog_peak = max(q for _, _, q, _ in timeline[backlog_from:])
        refused_backlog = pipeline.answers().get(429, 0) - refused_before

        stored_ids = list(Decision.objects.filter(path=POLICY_PATH).values_list("decision_id", flat=True))
        exact = (len(stored_ids) == len(offered) == len(set(offered)) and set(stored_ids) == set(offered)
                 and Decision.objects.count() == len(offered))
        answers = pipeline.answers()
        load_after = load_average()
    finally:
        for name in list(pipeline.procs):
            pipeline.stop(name)

    lines = [
        "# Decision-log ingest: sustained rate and a burst",
        "",
        "Command: `.venv/bin/python scripts/stack.py exec --profile test5 -- .venv/bin/python bench/ingest_burst.py"
        + "".join(f" {a}" for a in sys.argv[1:]) + "`  ",
        f"Machine: {machine()}; OPA {stack.OPA_VERSION}; "
        f"{datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC; load average (1/5/15 min) {load_before} before, "
        f"{load_after} after (the machine is shared)  ",
        f"Pipeline: OPA (reporting every 1-2 s) -> gunicorn (2 sync workers) -> Postgres -> Redis -> Celery "
        f"worker (prefork, concurrency {args.worker_concurrency}) and beat, with {args.procs} load generator "
        "processes, all on this machine; queue limit "
        f"{args.queue_limit} batches (GAVEL_INGEST_MAX_QUEUED_BATCHES).",
        "",
        "## Sustained rate",
        "",
        f"Offered rates doubling, {args.step_seconds:g} s each; kept up with = everything offered was stored within "
        f"{args.drain_seconds:g} s of the step's end.",
        "",
        "| target / s | offered / s | decisions | OPA errors | stored within |",
        "| --- | --- | --- | --- | --- |",
        *[f"| {s['target']:,.0f} | {s['achieved']:,.0f} | {s['decisions']:,} | {s['failed']} | "
          f"{'%.1f s' % s['drained'] if s['drained'] is not None else 'not kept up with'} |" for s in steps],
        "",
        (f"**Sustained: at least {sustained:,.0f} decisions/s** from OPA through Gavel to stored rows: Gavel kept "
         "up with every step, and the last one is as fast as the load generators and OPA could decide on the cores "
         "they share with Gavel; the limit here is producing decisions, not storing them."
         if steps[-1]["drained"] is not None else
         f"**Sustained: {sustained:,.0f} decisions/s** from OPA through Gavel to stored rows (the fastest step "
         "Gavel kept up with)."),
        "",
        "## Burst",
        "",
        "| | |",
        "| --- | --- |",
        f"| target | {args.factor:g} x {sustained:,.0f} = {args.factor * sustained:,.0f} decisions/s for "
        f"{args.burst_seconds:g} s |",
        f"| offered (achieved) | {burst_rate:,.0f} decisions/s, {len(burst['ids']):,} decisions "
        f"({burst_rate / sustained:.1f}x sustained"
        + ("; the generators and OPA could not decide faster on this machine" if burst_rate < 0.9 * args.factor
           * sustained else "") + ") |",
        f"| OPA errors to the generators | {burst['failed']} |",
        f"| stored when the burst ended | {stored_at_end:,} of {len(offered):,} offered so far; {queued_at_end} "
        f"batches queued "
        f"(peak {peak_queue}) |",
        f"| refused uploads (429) during the burst and catch-up | {refused_burst} |",
        f"| catch-up after the burst | {'%.1f s' % catch_up if catch_up is not None else 'did not finish'} |",
        "",
        "## Backlog drill",
        "",
        f"Gavel's web process stopped while OPA decided {len(held['ids']):,} times at the sustained rate for "
        f"{args.backlog_seconds:g} s and kept the logs; then started again. OPA uploads its whole buffer at once, "
        "so this is the steepest burst Gavel itself sees. The catch-up counts from the web process's start, so it "
        "includes gunicorn's start and OPA's retry backoff; no load generator of this run competes for the cores.",
        "",
        "| | |",
        "| --- | --- |",
        f"| catch-up | {'%.1f s' % backlog_catch_up if backlog_catch_up else 'did not finish'}"
        + (f", {len(held['ids']) / backlog_catch_up:,.0f} decisions/s" if backlog_catch_up else "") + " |",
        f"| peak backlog | {backlog_peak} batches (limit {args.queue_limit}) |",
        f"| refused uploads (429), retried by OPA | {refused_backlog} |",
        "",
        "## Whole run",
        "",
        "| | |",
        "| --- | --- |",
        f"| uploads answered | {', '.join(f'{n} x {s}' for s, n in sorted(answers.items()))} |",
        f"| exact check | {'every decision stored exactly once' if exact else 'FAILED'}: {len(stored_ids):,} rows "
        f"for {len(offered):,} decision_ids OPA returned |",
        "",
    ]
    text = "\n".join(lines)
    print(text)
    if not args.no_write:
        RESULTS.write_text(text)
    return 0 if exact and catch_up is not None and backlog_catch_up is not None else 1


if __name__ == "__main__":
    sys.exit(main())
