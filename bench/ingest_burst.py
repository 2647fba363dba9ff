#!/usr/bin/env python
"""Ingest under load: the sustained rate, then ten times that for a minute, nothing lost.

Runs the whole pipeline as processes (tests/faults/pipeline.py): a Gavel web process (gunicorn,
2 workers), a Celery worker and beat, on the Postgres and Redis of the stack profile it runs in,
with a database of its own (`gavel_bench`, created afresh). Two parts:

A. Through a real OPA. vegeta (an open-loop load generator in Go, built once by `go install` like
   OPA) asks OPA for decisions at rates doubling from --start-rate, --step-seconds each, and every
   decision_id OPA answered with is kept. A step is kept up with when everything OPA decided is
   stored within --drain-seconds of its end. On two shared cores OPA stops keeping up before Gavel
   does, so this part shows what Gavel takes from a real OPA, not Gavel's own limit. Then the
   backlog drill: Gavel's web process down for --backlog-seconds while OPA decides and keeps the
   logs, then up, and OPA uploads its whole buffer at once.

B. Gavel's own rate, and the burst. A fleet of --fleet simulated OPA instances make decisions by
   the clock (no evaluation, so nothing but Gavel competes for the cores) and upload them as OPA's
   decision-log plugin does: real OPA events from part A as the template, each with a new
   decision_id, in chunks the size OPA made in part A, gzip-compressed, POSTed with OPA's bearer
   token. Every instance keeps what Gavel has not taken: on each tick (every 1-2 s, as OPA is
   configured here) it uploads its buffer chunk by chunk and stops at the first refusal, to try
   again on its next tick. The sustained rate is the highest of rates doubling from
   --replay-start-rate (then one halfway back from the first that failed) that Gavel stores within
   --drain-seconds of the step's end; the burst is
   --factor times that for --burst-seconds. Then the catch-up time, and the exact check: the stored
   decision_ids are exactly the ones made, none twice.

    .venv/bin/python scripts/stack.py exec --profile bench -- .venv/bin/python bench/ingest_burst.py
"""
from __future__ import annotations

import argparse
import base64
import gzip
import http.client
import json
import logging
import os
import platform
import random
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter, deque
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results" / "ingest_burst.md"
BENCH_DB = "gavel_bench"
REPLAYED_PATH = "faults/ingest/replayed"  # part B's decisions, counted apart from part A's
sys.path[:0] = [str(ROOT), str(ROOT / "scripts")]
import stack  # noqa: E402

VEGETA = stack.vegeta_binary()


# --- part A: decisions from a real OPA, asked for by vegeta ----------------------------------------


def offer(opa_url: str, rate: float, seconds: float, tmp: Path, phase: str, sample) -> dict:
    """Ask OPA for `rate` decisions a second for `seconds` with vegeta, sampling Gavel once a second
    meanwhile. vegeta is open loop: requests go out on schedule whether or not earlier ones were
    answered, up to 256 in flight (past that OPA is the limit, and the offered rate shows it).
    Returns every decision_id OPA answered with, the requests that got no answer, the duration."""
    from tests.faults.pipeline import POLICY_PATH

    targets = tmp / f"{phase}.targets"
    with targets.open("w") as out:
        for n in range(5000):  # vegeta cycles through these: varied inputs, one decision_id per request
            body = json.dumps({"input": {"n": n, "user": f"user-{n % 500}", "tool": "search.web",
                                         "tokens": n % 12000}})
            out.write(json.dumps({"method": "POST", "url": f"{opa_url}/v1/data/{POLICY_PATH}",
                                  "header": {"Content-Type": ["application/json"]},
                                  "body": base64.b64encode(body.encode()).decode()}) + "\n")
    results = tmp / f"{phase}.bin"
    attack = subprocess.Popen([str(VEGETA), "attack", "-format=json", f"-targets={targets}",
                               f"-rate={round(rate)}/1s", f"-duration={seconds:g}s", "-timeout=60s",
                               "-max-workers=256", f"-output={results}"])
    while attack.poll() is None:
        sample()
        time.sleep(1)
    if attack.returncode:
        raise SystemExit(f"vegeta attack failed ({attack.returncode})")
    report = json.loads(subprocess.run([str(VEGETA), "report", "-type=json", str(results)], check=True,
                                       capture_output=True, text=True).stdout)
    ids: list[str] = []
    failed = 0
    with subprocess.Popen([str(VEGETA), "encode", "--to", "json", str(results)], stdout=subprocess.PIPE) as hits:
        for line in hits.stdout:
            hit = json.loads(line)
            if hit["code"] == 200:
                ids.append(json.loads(base64.b64decode(hit["body"]))["decision_id"])
            else:
                failed += 1
    return {"ids": ids, "failed": failed, "seconds": report["duration"] / 1e9,
            "p99_ms": report["latencies"]["99th"] / 1e6}


# --- part B: a fleet of OPA instances, simulated by the clock --------------------------------------


class Chunks:
    """Decision-log uploads shaped like OPA's: copies of real events with new decision_ids."""

    def __init__(self, template: list[dict], size: int):
        self.template = template
        self.size = size

    def make(self, count: int, instance: str) -> tuple[bytes, list[str]]:
        now = datetime.now(timezone.utc).isoformat().replace("+00:00", "Z")
        events, ids = [], []
        for i in range(count):
            event = dict(self.template[i % len(self.template)])
            event["decision_id"] = str(uuid.uuid4())
            event["timestamp"] = now
            event["path"] = REPLAYED_PATH
            event["labels"] = {**event.get("labels", {}), "instance": instance}
            events.append(event)
            ids.append(event["decision_id"])
        return gzip.compress(json.dumps(events).encode()), ids


class SimulatedOpa(threading.Thread):
    """One OPA instance's decision-log plugin: a buffer of chunks, flushed on every tick until Gavel
    refuses one (429, 503, or no answer), which stays at the head of the buffer for the next tick."""

    def __init__(self, name: str, gavel_url: str, token: str, fleet: "Fleet"):
        super().__init__(daemon=True, name=name)
        self.host, port = gavel_url.removeprefix("http://").split(":")
        self.port = int(port)
        self.headers = {"Content-Type": "application/json", "Content-Encoding": "gzip",
                        "Authorization": f"Bearer {token}"}
        self.fleet = fleet
        self.buffer: deque[tuple[bytes, int]] = deque()

    def run(self) -> None:
        while not self.fleet.stopping.is_set():
            time.sleep(random.uniform(1, 2))  # OPA here reports every 1-2 s
            while self.buffer:
                body, count = self.buffer[0]
                status = self.upload(body)
                self.fleet.answered(status, count)
                if status != 204:
                    break  # kept, and tried again on the next tick
                self.buffer.popleft()

    def upload(self, body: bytes) -> int:
        try:
            conn = http.client.HTTPConnection(self.host, self.port, timeout=30)
            conn.request("POST", "/api/v1/opa/logs", body, self.headers)
            answer = conn.getresponse()
            answer.read()
            conn.close()
            return answer.status
        except (OSError, http.client.HTTPException):
            return 0


class Fleet:
    def __init__(self, size: int, gavel_url: str, token: str, chunks: Chunks):
        self.chunks = chunks
        self.lock = threading.Lock()
        self.stopping = threading.Event()
        self.answers: Counter[int] = Counter()
        self.accepted = 0
        self.made: list[str] = []
        self.instances = [SimulatedOpa(f"replay-{i}", gavel_url, token, self) for i in range(size)]
        for instance in self.instances:
            instance.start()

    def answered(self, status: int, count: int) -> None:
        with self.lock:
            self.answers[status] += 1
            if status == 204:
                self.accepted += count
            elif status not in (0, 429, 503):
                raise SystemExit(f"Gavel answered {status} to an upload OPA would not retry")

    def decide(self, rate: float, seconds: float, sample) -> dict:
        """Make `rate` decisions a second for `seconds`: a full chunk lands in an instance's buffer
        each time its last decision is due. Chunks are built beforehand, so building them does not
        slow the schedule."""
        total = int(rate * seconds)
        sizes = [self.chunks.size] * (total // self.chunks.size) + ([total % self.chunks.size] if total % self.chunks.size else [])
        built = [self.chunks.make(size, self.instances[i % len(self.instances)].name) for i, size in enumerate(sizes)]
        start = time.monotonic()
        next_sample = start
        made = 0
        for i, (body, ids) in enumerate(built):
            made += len(ids)
            delay = start + made / rate - time.monotonic()
            while delay > 0:
                if time.monotonic() >= next_sample:
                    sample()
                    next_sample += 1
                time.sleep(min(delay, 0.05))
                delay = start + made / rate - time.monotonic()
            self.instances[i % len(self.instances)].buffer.append((body, len(ids)))
            self.made += ids
        return {"made": total, "seconds": time.monotonic() - start, "chunks": len(built)}

    def stop(self) -> None:
        self.stopping.set()


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


def seconds_or(value: float | None, otherwise: str) -> str:
    return f"{value:.1f} s" if value is not None else otherwise


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--start-rate", type=float, default=200, help="part A's first rate, decisions/s")
    parser.add_argument("--max-rate", type=float, default=6400)
    parser.add_argument("--replay-start-rate", type=float, default=1000, help="part B's first rate, decisions/s")
    parser.add_argument("--replay-max-rate", type=float, default=32000)
    parser.add_argument("--fleet", type=int, default=8, help="part B's simulated OPA instances")
    parser.add_argument("--step-seconds", type=float, default=15)
    parser.add_argument("--drain-seconds", type=float, default=8)
    parser.add_argument("--factor", type=float, default=10)
    parser.add_argument("--burst-seconds", type=float, default=60)
    parser.add_argument("--catch-up-limit", type=float, default=1800, help="give up waiting after this long")
    parser.add_argument("--worker-concurrency", type=int, default=2)
    parser.add_argument("--queue-limit", type=int, default=20,
                        help="GAVEL_INGEST_MAX_QUEUED_BATCHES for the run: low, so backpressure engages at this scale")
    parser.add_argument("--backlog-seconds", type=float, default=20,
                        help="the backlog drill: decisions OPA makes while the web process is down")
    parser.add_argument("--no-write", action="store_true", help="print the results, do not write the file")
    args = parser.parse_args()

    if "DATABASE_URL" not in os.environ or "REDIS_URL" not in os.environ:
        raise SystemExit("run it inside a stack: scripts/stack.py exec --profile bench -- .venv/bin/python " + __file__)

    os.environ["DATABASE_URL"] = bench_database()
    os.environ["REDIS_URL"] = os.environ["REDIS_URL"].rsplit("/", 1)[0] + "/6"
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "console.settings")
    os.environ.setdefault("OPA_BINARY", str(stack.opa_binary()))
    import django

    django.setup()
    import redis
    from django.conf import settings
    from django.db import connection
    from django.db.models import Sum

    from core.models import LogBatch
    from tests.faults.pipeline import FAST_SWEEP, POLICY_PATH, IngestStack

    logging.getLogger("httpx").setLevel(logging.WARNING)
    redis.Redis.from_url(settings.REDIS_URL).flushdb()
    tmp = Path(tempfile.mkdtemp(prefix="gavel-burst-"))
    env = {**os.environ, "GAVEL_OPA_TOKEN": settings.GAVEL_OPA_TOKEN, "SECRET_KEY": settings.SECRET_KEY,
           "LOG_LEVEL": "WARNING", "PYTHONPATH": str(ROOT), **FAST_SWEEP,
           "GAVEL_INGEST_MAX_QUEUED_BATCHES": str(args.queue_limit)}
    pipeline = IngestStack(home=tmp, env=env, worker_concurrency=args.worker_concurrency)
    pipeline.env["OPA_URL"] = pipeline.opa_url
    expected = [0]  # decisions made so far, by OPA or by the fleet
    timeline: list[tuple[float, int, int]] = []  # (t, stored, queued batches)
    started = time.monotonic()
    load_before = load_average()

    def sample() -> tuple[int, int]:
        """Stored decisions and queued batches, from the small batch table (counting rows would load Postgres)."""
        stored = LogBatch.objects.aggregate(n=Sum("stored_count"))["n"] or 0
        queued = LogBatch.objects.filter(status=LogBatch.Status.QUEUED).count()
        timeline.append((time.monotonic() - started, stored, queued))
        return stored, queued

    def drain(limit: float) -> float | None:
        """Seconds until every decision made so far is stored, or None past `limit`."""
        begin = time.monotonic()
        while time.monotonic() - begin < limit:
            stored, queued = sample()
            if stored >= expected[0] and not queued:
                return time.monotonic() - begin
            time.sleep(0.5)
        return None

    def ladder(first: float, last: float, step) -> tuple[list[dict], float | None]:
        """Rates doubling from `first`, and once one is not kept up with, the rate halfway back to
        the last one that was; the sustained rate is the fastest one stored in time."""
        steps, sustained, rate, refining = [], None, first, False
        while rate <= last:
            result = step(rate)
            drained = drain(args.drain_seconds)
            steps.append({**result, "target": rate, "drained": drained})
            print(f"step {rate:g}/s: {result['achieved']:.0f}/s, drained in {drained}", flush=True)
            if drained is None:
                drain(args.catch_up_limit)  # caught up before what comes next
                if refining or sustained is None:
                    break
                refining, rate = True, 0.75 * rate
                continue
            sustained = max(sustained or 0, result["achieved"])
            if result["achieved"] < 0.9 * rate or refining:
                break  # what makes the decisions is the limit now, or the ladder is done
            rate *= 2
        return steps, sustained

    def stored_ids(path: str) -> list[str]:
        with connection.cursor() as cursor:
            cursor.execute("SELECT decision_id FROM audit_decision WHERE path = %s", [path])
            return [row[0] for row in cursor.fetchall()]

    try:
        pipeline.start_web()
        pipeline.start_worker()
        pipeline.start_beat()
        pipeline.start_opa()
        print(f"pipeline up; logs in {tmp}", flush=True)

        # Part A: a real OPA.
        opa_ids: list[str] = []
        opa_unanswered = 0

        def opa_step(rate: float, seconds: float | None = None, phase: str | None = None) -> dict:
            nonlocal opa_unanswered
            result = offer(pipeline.opa_url, rate, seconds or args.step_seconds, tmp, phase or f"step-{rate:g}", sample)
            opa_ids.extend(result["ids"])
            opa_unanswered += result["failed"]
            expected[0] += len(result["ids"])
            return {"achieved": len(result["ids"]) / result["seconds"], "decisions": len(result["ids"]),
                    "failed": result["failed"], "p99_ms": result["p99_ms"]}

        opa_steps, opa_sustained = ladder(args.start_rate, args.max_rate, opa_step)
        if opa_sustained is None:
            raise SystemExit("Gavel kept up with no step from OPA; lower --start-rate")

        pipeline.stop("web")
        held = opa_step(opa_sustained, args.backlog_seconds, "backlog")
        refused_before = pipeline.answers().get(429, 0)
        backlog_from = len(timeline)
        pipeline.start_web()
        backlog_catch_up = drain(args.catch_up_limit)
        backlog_peak = max(q for _, _, q in timeline[backlog_from:])
        refused_backlog = pipeline.answers().get(429, 0) - refused_before

        # Part B: the fleet, shaped by what OPA sent in part A.
        opa_batches = LogBatch.objects.filter(status=LogBatch.Status.STORED).exclude(body_gz=b"")
        chunk_size = int(statistics.median(opa_batches.values_list("event_count", flat=True)))
        template = json.loads(gzip.decompress(bytes(opa_batches.order_by("-event_count").first().body_gz)))
        fleet = Fleet(args.fleet, pipeline.web_url, settings.GAVEL_OPA_TOKEN, Chunks(template, chunk_size))

        def fleet_step(rate: float) -> dict:
            result = fleet.decide(rate, args.step_seconds, sample)
            expected[0] += result["made"]
            return {"achieved": result["made"] / result["seconds"], "decisions": result["made"]}

        fleet_steps, sustained = ladder(args.replay_start_rate, args.replay_max_rate, fleet_step)
        if sustained is None:
            raise SystemExit("Gavel kept up with no step from the fleet; lower --replay-start-rate")

        answers_before = Counter(fleet.answers)
        burst_from = len(timeline)
        burst = fleet.decide(args.factor * sustained, args.burst_seconds, sample)
        expected[0] += burst["made"]
        burst_rate = burst["made"] / burst["seconds"]
        print(f"burst: {burst_rate:.0f}/s ({burst['made']} decisions)", flush=True)
        stored_at_end, queued_at_end = sample()
        catch_up = drain(args.catch_up_limit)
        fleet.stop()
        peak_queue = max(q for _, _, q in timeline[burst_from:])
        burst_answers = fleet.answers - answers_before
        catch_up_rate = (expected[0] - stored_at_end) / catch_up if catch_up else None

        # The exact check, over both parts.
        stored_opa = stored_ids(POLICY_PATH)
        stored_fleet = stored_ids(REPLAYED_PATH)
        with connection.cursor() as cursor:
            cursor.execute("SELECT count(*) FROM audit_decision")
            rows = cursor.fetchone()[0]
        # A request vegeta got no answer to may still have been decided (and logged) by OPA.
        extra_opa = len(stored_opa) - len(opa_ids)
        opa_exact = (len(set(stored_opa)) == len(stored_opa) and set(opa_ids) <= set(stored_opa)
                     and 0 <= extra_opa <= opa_unanswered)
        fleet_exact = len(stored_fleet) == len(fleet.made) == len(set(fleet.made)) and set(stored_fleet) == set(fleet.made)
        exact = opa_exact and fleet_exact and rows == len(stored_opa) + len(stored_fleet)
        web_answers = pipeline.answers()
        load_after = load_average()
    finally:
        for name in list(pipeline.procs):
            pipeline.stop(name)

    lines = [
        "# Decision-log ingest: sustained rate and a burst",
        "",
        "Command: `.venv/bin/python scripts/stack.py exec --profile bench -- .venv/bin/python bench/ingest_burst.py"
        + "".join(f" {a}" for a in sys.argv[1:]) + "`  ",
        f"Machine: {machine()}; OPA {stack.OPA_VERSION}, vegeta {stack.VEGETA_VERSION}; "
        f"{datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC; load average (1/5/15 min) {load_before} before, "
        f"{load_after} after (the machine is shared)  ",
        f"Pipeline: gunicorn (2 sync workers) -> Postgres -> Redis -> Celery worker (prefork, concurrency "
        f"{args.worker_concurrency}) and beat, all on this machine; queue limit {args.queue_limit} batches "
        "(GAVEL_INGEST_MAX_QUEUED_BATCHES), Retry-After 5 s.",
        "",
        "## A. From a real OPA",
        "",
        f"vegeta asks OPA for decisions at rates doubling (and once one is not kept up with, the rate halfway back), "
        f"{args.step_seconds:g} s each; OPA ships its logs every 1-2 s. Kept up with = everything OPA decided was stored within {args.drain_seconds:g} s of the step's end.",
        "",
        "| target / s | decided / s | decisions | unanswered | OPA p99 | stored within |",
        "| --- | --- | --- | --- | --- | --- |",
        *[f"| {s['target']:,.0f} | {s['achieved']:,.0f} | {s['decisions']:,} | {s['failed']} | {s['p99_ms']:.1f} ms | "
          f"{seconds_or(s['drained'], 'not kept up with')} |" for s in opa_steps],
        "",
        (f"Gavel stored everything OPA decided, up to {opa_sustained:,.0f} decisions/s; past that, OPA and vegeta "
         "could not decide faster on the cores they share with Gavel."
         if opa_steps[-1]["drained"] is not None else
         f"Gavel kept up with OPA up to {opa_sustained:,.0f} decisions/s."),
        "",
        "**Backlog drill.** Gavel's web process stopped while OPA decided "
        f"{held['decisions']:,} times at {opa_sustained:,.0f}/s for {args.backlog_seconds:g} s and kept the logs; "
        "then started again, and OPA uploaded its whole buffer at once. Catch-up (from the web process's start, so "
        f"including gunicorn's start and OPA's retry backoff): {seconds_or(backlog_catch_up, 'did not finish')}"
        + (f", {held['decisions'] / backlog_catch_up:,.0f} decisions/s" if backlog_catch_up else "")
        + f"; peak backlog {backlog_peak} batches; {refused_backlog} uploads refused (429) and retried by OPA.",
        "",
        "## B. Gavel's own rate, and ten times it for a minute",
        "",
        f"{args.fleet} simulated OPA instances make decisions by the clock and upload them as OPA's decision-log "
        f"plugin does: copies of the real events OPA sent in part A, new decision_ids, {chunk_size} to a chunk "
        "(the median OPA made in part A), gzip, OPA's bearer token; each keeps what Gavel refuses and tries again on "
        f"its next tick (every 1-2 s). Rates doubling, and halfway back once one is not kept up with, "
        f"{args.step_seconds:g} s each; kept up with = stored within {args.drain_seconds:g} s of the step's end.",
        "",
        "| target / s | made / s | decisions | stored within |",
        "| --- | --- | --- | --- |",
        *[f"| {s['target']:,.0f} | {s['achieved']:,.0f} | {s['decisions']:,} | "
          f"{seconds_or(s['drained'], 'not kept up with')} |" for s in fleet_steps],
        "",
        f"**Sustained: {sustained:,.0f} decisions/s** (the fastest step stored in time).",
        "",
        "| burst | |",
        "| --- | --- |",
        f"| made | {burst_rate:,.0f} decisions/s for {args.burst_seconds:g} s = {burst_rate / sustained:.1f}x sustained, "
        f"{burst['made']:,} decisions in {burst['chunks']:,} chunks |",
        f"| stored when the burst ended | {stored_at_end:,} of {expected[0]:,} made in the whole run; "
        f"{queued_at_end} batches queued (peak {peak_queue}, limit {args.queue_limit}) |",
        f"| uploads during the burst and catch-up | "
        + ", ".join(f"{n:,} x {status or 'no answer'}" for status, n in sorted(burst_answers.items())) + " |",
        f"| catch-up after the burst | {seconds_or(catch_up, 'did not finish')}"
        + (f" ({catch_up_rate:,.0f} decisions/s)" if catch_up_rate else "") + " |",
        "",
        "## Whole run",
        "",
        "| | |",
        "| --- | --- |",
        f"| uploads answered by the web process | {', '.join(f'{n:,} x {s}' for s, n in sorted(web_answers.items()))} |",
        f"| part A | {len(stored_opa):,} rows for {len(opa_ids):,} decision_ids OPA answered with"
        + (f" and {opa_unanswered} requests it did not answer ({extra_opa} of those decided and stored)"
           if opa_unanswered else "") + f": {'exact' if opa_exact else 'FAILED'} |",
        f"| part B | {len(stored_fleet):,} rows for {len(fleet.made):,} decisions made: "
        f"{'exact' if fleet_exact else 'FAILED'} |",
        f"| exact check | {'every decision stored exactly once' if exact else 'FAILED'}: {rows:,} rows in all |",
        "",
    ]
    text = "\n".join(lines)
    print(text)
    if not args.no_write:
        RESULTS.write_text(text)
    return 0 if exact and catch_up is not None and backlog_catch_up is not None else 1


if __name__ == "__main__":
    sys.exit(main())
