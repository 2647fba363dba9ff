#!/usr/bin/env python
"""Replay throughput: inputs per second through the real OPA, batched versus one request each.

Starts its own OPA, then for 10,000 and 100,000 agent-gateway inputs from the demo traffic
generator runs Gavel's replay core (policies.replay.replay_records: scratch package, chunks of
GAVEL_REPLAY_CHUNK inputs per POST /v1/query) with a candidate that lowers the token budget.
The recorded side is built in memory, not as 100,000 Decision rows: the baseline outcomes come
from replaying the published demo policy the same way first. For comparison, a naive replay
sends one POST /v1/data request per input for a subset, against the same scratch-loaded candidate.

    .venv/bin/python bench/replay_throughput.py [--sizes 10000 100000] [--naive 2000] [--chunk 1000]
"""
import argparse
import logging
import os
import platform
import random
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "scripts")]
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "console.settings")
os.environ.setdefault("DEBUG", "1")

import stack  # noqa: E402

os.environ.setdefault("OPA_BINARY", str(stack.opa_binary()))  # the replay parses the candidate with `opa parse`

import django  # noqa: E402

django.setup()

from django.conf import settings  # noqa: E402

from core.opa import evaluation  # noqa: E402
from core.outcomes import derive_outcome  # noqa: E402
from console.demo.traffic import random_request  # noqa: E402
from policies import replay  # noqa: E402
from core.opa.client import OpaClient  # noqa: E402

logging.getLogger("httpx").setLevel(logging.WARNING)  # one line per request would drown the figures

RESULTS = ROOT / "bench" / "results" / "replay_throughput.md"
SOURCE = (ROOT / "console/demo/policies/agent_gateway.rego").read_text()
CANDIDATE = SOURCE.replace("max_token_budget := 8000", "max_token_budget := 4000")


def gateway_inputs(count: int, seed: int) -> list[dict]:
    rng, inputs = random.Random(seed), []
    while len(inputs) < count:
        path, document = random_request(rng)
        if path.endswith("agent_gateway/decision"):
            inputs.append(document)
    return inputs


def baseline(inputs: list[dict], client: OpaClient, chunk: int) -> list[replay.Recorded]:
    """What the published policy decides for each input, as if it had been recorded."""
    verdicts, _ = replay.evaluate(SOURCE, inputs, client=client, chunk_size=chunk)
    records = []
    for n, (document, verdict) in enumerate(zip(inputs, verdicts)):
        outcome, reasons = derive_outcome(verdict)
        records.append(replay.Recorded(f"bench-{n}", document, outcome, tuple(sorted(reasons))))
    return records


def naive(inputs: list[dict], client: OpaClient) -> float:
    """Seconds to evaluate the candidate with one HTTP request per input."""
    policy_id, package = "gavel_replay/naive", "gavel_replay.naive"
    client.put_policy(policy_id, evaluation.scratch_source(CANDIDATE, package))
    try:
        started = time.perf_counter()
        for document in inputs:
            client.decide(package.replace(".", "/") + "/decision", document)
        return time.perf_counter() - started
    finally:
        client.delete_policy(policy_id)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000])
    parser.add_argument("--naive", type=int, default=2000, help="inputs for the one-request-per-input baseline")
    parser.add_argument("--chunk", type=int, default=settings.GAVEL_REPLAY_CHUNK)
    args = parser.parse_args()

    port = stack.free_port()
    # Decision logs go nowhere; the naive baseline is logged by OPA like real traffic would be.
    opa = stack.start_opa(Path(tempfile.mkdtemp(prefix="gavel-bench-")), port, "http://127.0.0.1:9/none", "x", {})
    rows = []
    try:
        with OpaClient(f"http://127.0.0.1:{port}", timeout=120) as client:
            replay.evaluate(SOURCE, gateway_inputs(500, 1), client=client, chunk_size=args.chunk)  # warm-up
            for size in args.sizes:
                records = baseline(gateway_inputs(size, size), client, args.chunk)
                report = replay.replay_records(CANDIDATE, records, client=client, chunk_size=args.chunk)
                rows.append((size, report))
                print(f"{size} inputs: {report.seconds:.2f}s, {size / report.seconds:,.0f}/s, "
                      f"{report.round_trips} round trips, {report.changed} would change", flush=True)
            subset = gateway_inputs(args.naive, 7)
            naive_seconds = naive(subset, client)
            print(f"naive {args.naive} inputs: {naive_seconds:.2f}s, {args.naive / naive_seconds:,.0f}/s", flush=True)
    finally:
        stack.stop_process(opa, "bench OPA")
    write(args, rows, naive_seconds)


def write(args, rows, naive_seconds: float) -> None:
    naive_rate = args.naive / naive_seconds
    lines = [
        "# Replay throughput", "",
        f"Command: `.venv/bin/python bench/replay_throughput.py --sizes {' '.join(map(str, args.sizes))} "
        f"--naive {args.naive} --chunk {args.chunk}`  ",
        f"Machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}, OPA "
        f"{stack.OPA_VERSION}; {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC", "",
        "Agent-gateway inputs from the demo traffic generator, replayed through a candidate that lowers the token "
        "budget from 8000 to 4000, by Gavel's replay core (`policies.replay.replay_records`, called directly with "
        "in-memory recorded decisions rather than 100,000 Decision rows). Time includes loading and deleting the "
        "scratch modules and comparing every verdict. The naive baseline sends one `POST /v1/data` per input to "
        f"the same candidate, on {args.naive:,} inputs.", "",
        "| inputs | seconds | inputs / second | round trips | would change | batched / naive |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for size, report in rows:
        rate = size / report.seconds
        lines.append(f"| {size:,} | {report.seconds:.2f} | {rate:,.0f} | {report.round_trips} | {report.changed:,} "
                     f"| {rate / naive_rate:.1f}x |")
    lines.append(f"| {args.naive:,} (naive, one request each) | {naive_seconds:.2f} | {naive_rate:,.0f} "
                 f"| {args.naive:,} | — | 1.0x |")
    RESULTS.write_text("\n".join(lines) + "\n")
    print(f"wrote {RESULTS.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
