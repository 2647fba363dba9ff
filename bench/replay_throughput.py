#!/usr/bin/env python
"""Replay of recorded decisions read from Postgres, end to end, the way the console runs it.

In a database of its own (`gavel_bench_replay`, created afresh on the stack's Postgres) it
  1. saves the demo agent-gateway policy (v1) and a candidate lowering the token budget from 8000 to
     4000 (v2), as an author does (`policies.services`: compiled, tested, summarised by OPA);
  2. records N decisions of v1: agent-gateway inputs from the demo traffic generator, each with v1's
     own answer (evaluated by Gavel's sandboxed OPA), stored through `core.store.insert` (the one
     write path: partitions, rollups) with timestamps over the last hours;
  3. replays them through v2 with the API's replay call (`POST /api/v1/policies/<name>/versions/2/replay/`
     with `{"last": N}`, in process through DRF, as a security admin): rows read from Postgres,
     each distinct input evaluated once by the sandboxed OPA server, verdicts compared. --repeat times;
  4. in the same run, the baseline: the path replay took before, over the same rows: Decision objects
     read through the ORM, then one sandboxed `opa eval` per --chunk inputs, one after another, every
     input evaluated (core/opa/local.py, what replay and explain used).

Figures go to bench/results/replay_throughput.md. Run inside a stack:

    .venv/bin/python scripts/stack.py exec --profile bench -- .venv/bin/python bench/replay_throughput.py
        [--decisions 100000] [--repeat 3]
"""
import argparse
import json
import logging
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
BASE_URL = os.environ.get("DATABASE_URL", "postgres://gavel@127.0.0.1:30429/gavel")
os.environ["DATABASE_URL"] = BASE_URL.rsplit("/", 1)[0] + "/gavel_bench_replay"

import psycopg  # noqa: E402

with psycopg.connect(BASE_URL, autocommit=True) as admin:  # a fresh database each run
    admin.execute("DROP DATABASE IF EXISTS gavel_bench_replay")
    admin.execute("CREATE DATABASE gavel_bench_replay")
    POSTGRES = admin.execute("SELECT version()").fetchone()[0].split(" on ")[0]

import django  # noqa: E402

django.setup()

import stack  # noqa: E402
from django.conf import settings  # noqa: E402
from django.contrib.auth.models import Group, User  # noqa: E402
from django.core.management import call_command  # noqa: E402
from django.db import connection  # noqa: E402
from rest_framework.test import APIClient  # noqa: E402

from console.demo.traffic import random_request  # noqa: E402
from core import store  # noqa: E402
from core.models import Decision  # noqa: E402
from core.opa import evaluation  # noqa: E402
from core.opa.batches import MISSING, Batches  # noqa: E402
from core.opa.local import LocalOpa  # noqa: E402
from core.opa.sandbox_server import SandboxServer  # noqa: E402
from core.outcomes import derive_outcome  # noqa: E402
from policies import replay, services  # noqa: E402

logging.getLogger("httpx").setLevel(logging.WARNING)  # one line per request would drown the figures

RESULTS = ROOT / "bench" / "results" / "replay_throughput.md"
SOURCE = (ROOT / "console/demo/policies/agent_gateway.rego").read_text()
CANDIDATE = SOURCE.replace("max_token_budget := 8000", "max_token_budget := 4000")
TARGET_SECONDS = 5.0  # issue 17: 100,000 decisions read from Postgres, replayed, in at most 5 s


def gateway_inputs(count: int, seed: int) -> list[dict]:
    rng, inputs = random.Random(seed), []
    while len(inputs) < count:
        path, document = random_request(rng)
        if path.endswith("agent_gateway/decision"):
            inputs.append(document)
    return inputs


def record(policy, version, count: int) -> None:
    """`count` decisions of `version`, its own answers, stored through core.store."""
    inputs = gateway_inputs(count, seed=count)
    texts = [json.dumps(document) for document in inputs]
    with SandboxServer() as opa, evaluation.loaded(opa, version.source, "bench", extra_rules=replay.RESULTS) as scratch:
        opa.load()
        with Batches(opa.evaluate, scratch.harness.replace(".", "/") + "/results", chunk_size=2000) as batches:
            slots = [batches.add(text) for text in texts]
            answers = batches.answers()
    now = datetime.now(UTC)
    decisions = []
    for n, (document, slot) in enumerate(zip(inputs, slots)):
        verdict = answers[slot]
        result = {**verdict, "effective_mode": "enforce", "policy": policy.name, "policy_version": version.number,
                  "would_deny": False, "exceptions_applied": []} if verdict is not MISSING else None
        outcome, reasons = derive_outcome(result) if result is not None else derive_outcome()
        decisions.append(Decision(
            decision_id=str(uuid.uuid4()), timestamp=now - timedelta(milliseconds=100 * n),
            path=f"gavel_entry/{policy.name}/decision", input=document, result=result, outcome=outcome,
            reasons=reasons, policy=policy, version=version, version_source="reported", effective_mode="enforce",
            environment="prod", instance="bench-opa", user=document["user"]["id"], agent=document["agent"]["id"],
            action=document.get("action", ""), resource=document.get("resource", ""), latency_ns=150_000))
    for start in range(0, len(decisions), 10_000):
        store.insert(decisions[start:start + 10_000])
    with connection.cursor() as cursor:  # what autovacuum does soon after a load this size
        cursor.execute("ANALYZE audit_decision")


def previous_path(version, last: int, chunk: int) -> tuple[float, int]:
    """The replay before the sandbox server: Decision objects through the ORM, then one sandboxed
    `opa eval` per chunk, one after another, every input evaluated. Seconds, and changes found."""
    started = time.perf_counter()
    fields = ("decision_id", "input", "result", "outcome", "reasons", "effective_mode", "exception_ids")
    decisions = list(Decision.objects.filter(policy=version.policy).order_by("-timestamp", "-id").only(*fields)[:last])
    records = [found for found in map(evaluation.recorded, decisions) if not isinstance(found, str)]
    verdicts = []
    with LocalOpa() as client, evaluation.loaded(client, version.source, "replay",
                                                 extra_rules=replay.RESULTS) as scratch:
        for start in range(0, len(records), chunk):
            part = records[start:start + chunk]
            rows = client.query(f"results := data.{scratch.harness}.results", [r.input for r in part])
            answers = rows[0]["results"] if rows else {}
            verdicts.extend(answers.get(str(i), MISSING) for i in range(len(part)))
    report = replay.compare(records, verdicts, replay.ReplayReport())
    return time.perf_counter() - started, report.changed


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--decisions", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--chunk", type=int, default=settings.GAVEL_REPLAY_CHUNK)
    parser.add_argument("--skip-baseline", action="store_true", help="skip the previous path (tens of seconds)")
    args = parser.parse_args()
    settings.GAVEL_REPLAY_MAX_DECISIONS = max(settings.GAVEL_REPLAY_MAX_DECISIONS, args.decisions)
    settings.GAVEL_REPLAY_CHUNK = args.chunk

    call_command("migrate", verbosity=0)
    author = User.objects.create_user("bench-author")
    admin = User.objects.create_user("bench-admin")
    admin.groups.add(Group.objects.get(name="security_admin"))
    policy = services.create_policy(name="agent_gateway", title="Agent gateway", source=SOURCE, author=author,
                                    message="published")
    v1 = policy.latest_version
    v2 = services.save_version(policy, source=CANDIDATE, author=author, message="token budget 4000")
    started = time.perf_counter()
    record(policy, v1, args.decisions)
    print(f"recorded {args.decisions:,} decisions in {time.perf_counter() - started:.1f}s", flush=True)

    api = APIClient(SERVER_NAME="localhost")  # an allowed host
    api.force_authenticate(admin)
    runs = []
    for _ in range(args.repeat):
        started = time.perf_counter()
        answer = api.post(f"/api/v1/policies/{policy.name}/versions/{v2.number}/replay/", {"last": args.decisions},
                          format="json")
        seconds = time.perf_counter() - started
        assert answer.status_code == 200, answer.content[:500]
        runs.append((seconds, answer.json()))
        print(f"replay through the API: {seconds:.2f}s, {answer.json()['changed']:,} would change", flush=True)

    baseline = None
    if not args.skip_baseline:
        baseline = previous_path(v2, args.decisions, args.chunk)
        print(f"previous path: {baseline[0]:.2f}s, {baseline[1]:,} would change", flush=True)
    write(args, runs, baseline)


def write(args, runs, baseline) -> None:
    seconds = [s for s, _ in runs]
    best, median = min(seconds), statistics.median(seconds)
    report = runs[0][1]
    profile = Path(os.environ.get("GAVEL_STACK_HOME", "bench")).name
    load = " / ".join(f"{n:.1f}" for n in os.getloadavg())
    met = "met" if median <= TARGET_SECONDS else "not met"
    lines = [
        "# Replay throughput", "",
        f"Command: `.venv/bin/python scripts/stack.py exec --profile {profile} -- .venv/bin/python "
        f"bench/replay_throughput.py --decisions {args.decisions} --repeat {args.repeat} --chunk {args.chunk}`  ",
        f"Machine: {platform.machine()}, {os.cpu_count()} cores (shared), Python {platform.python_version()}, OPA "
        f"{stack.OPA_VERSION}, {POSTGRES}; {datetime.now(UTC):%Y-%m-%d %H:%M} UTC; load average {load} at the end", "",
        f"{args.decisions:,} agent-gateway decisions (inputs from the demo traffic generator, each with the published "
        f"policy's own answer) stored in Postgres through `core.store.insert`, then replayed through a candidate that "
        f"lowers the token budget from 8000 to 4000 by the API's replay call (`POST /api/v1/policies/agent_gateway/"
        f"versions/2/replay/`, `{{\"last\": {args.decisions}}}`, in process through DRF): rows read from Postgres, "
        f"each distinct input evaluated once by Gavel's sandboxed OPA server ({settings.GAVEL_REPLAY_WORKERS} requests "
        f"in flight, {args.chunk:,} inputs each), verdicts compared. The baseline is the path replay took before, on "
        f"the same rows in the same run: Decision objects through the ORM, then one sandboxed `opa eval` per "
        f"{args.chunk:,} inputs, one after another, every input evaluated.", "",
        "| path | seconds | decisions / second | requests to OPA | distinct inputs | would change | vs baseline |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for n, (run_seconds, answer) in enumerate(runs, 1):
        ratio = f"{run_seconds / baseline[0]:.2f}x" if baseline else "—"
        lines.append(f"| replay API call, run {n} | {run_seconds:.2f} | {args.decisions / run_seconds:,.0f} | "
                     f"{answer['round_trips']} | {answer['distinct_inputs']:,} | {answer['changed']:,} | {ratio} |")
    if baseline:
        chunks = -(-report["replayed"] // args.chunk)
        lines.append(f"| baseline: ORM + `opa eval` per chunk | {baseline[0]:.2f} "
                     f"| {args.decisions / baseline[0]:,.0f} "
                     f"| {chunks} | {report['replayed']:,} (all) | {baseline[1]:,} | 1.00x |")
    lines += ["", f"**Target: {args.decisions:,} decisions in at most {TARGET_SECONDS:g} s end to end. Median "
              f"{median:.2f} s (best {best:.2f} s): {met}.**"
              + (f" {baseline[0] / median:.1f}x faster than the baseline." if baseline else ""), ""]
    RESULTS.write_text("\n".join(lines))
    print("\n".join(lines))
    print(f"wrote {RESULTS.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
