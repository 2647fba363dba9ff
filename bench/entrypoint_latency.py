#!/usr/bin/env python
"""How much the generated entrypoint adds to a decision, measured against the bare policy.

Starts its own OPA, loads the demo agent-gateway policy and its entrypoint with the runtime
configuration Gavel pushes (rollout/runtime.py: a 25% canary in dry-run, one enforced and one
dry-run user, the kill switch off, 20 exceptions), then sends the same inputs to
`gavel/agent_gateway/decision` (bare) and `gavel_entry/agent_gateway/decision` (entrypoint),
interleaved so machine noise hits both alike. Reports OPA's own evaluation time
(`timer_rego_query_eval_ns`) and the client's round trip, each as entry/bare ratios, against
the target of issue 17 (at most 1.5x the bare policy's evaluation time at p50 and p95).

    .venv/bin/python bench/entrypoint_latency.py [--requests 3000]
"""
import argparse
import logging
import math
import os
import platform
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "scripts")]
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "console.settings")
os.environ.setdefault("DEBUG", "1")

import django  # noqa: E402

django.setup()

import httpx  # noqa: E402
import stack  # noqa: E402

from console.demo.traffic import random_request  # noqa: E402
from rollout.canary import Rollout  # noqa: E402
from rollout.entrypoint import FAST_BUCKET, render_entry  # noqa: E402
from rollout.runtime import rollout_document  # noqa: E402

logging.getLogger("httpx").setLevel(logging.WARNING)  # one line per request would drown the figures

RESULTS = ROOT / "bench" / "results" / "entrypoint_latency.md"
TARGET = 1.5  # issue 17: the entrypoint at most 1.5x the bare policy's evaluation time, p50 and p95

# The least any entrypoint with a canary does: the policy's decision passed through, plus the user's
# bucket, hashed and read as Gavel's entrypoint does it. No named users, exceptions, approvals
# or answer shapes: what is left of the entrypoint's cost once everything avoidable is gone.
FLOOR = f"""package gavel_floor.agent_gateway

import data.gavel.agent_gateway as policy

decision := {{"allow": answer.allow, "reasons": answer.reasons, "require_approval": answer.require_approval,
	"effective_mode": mode, "policy": "agent_gateway", "policy_version": 1}} if {{
	answer := policy.decision
	mode := canary_mode
}}

canary_mode := "enforce" if {{
	digest := crypto.sha256(input.user.id)
	{FAST_BUCKET} % 100 < 25
}} else := "dry-run"
"""


def percentile(values, p):
    values = sorted(values)
    return values[math.ceil(p / 100 * len(values)) - 1]  # nearest rank


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=3000)
    args = parser.parse_args()

    port = stack.free_port()
    opa = stack.start_opa(Path(tempfile.mkdtemp(prefix="gavel-bench-")), port, "http://127.0.0.1:9/none", "x", {})
    try:
        client = httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=10)
        source = (ROOT / "console/demo/policies/agent_gateway.rego").read_text()
        entry = render_entry("agent_gateway", 1, "gavel.agent_gateway")
        client.put("/v1/policies/gavel/agent_gateway", content=source).raise_for_status()
        client.put("/v1/policies/gavel_entry/agent_gateway", content=entry).raise_for_status()
        client.put("/v1/policies/gavel_floor/agent_gateway", content=FLOOR).raise_for_status()
        # As rollout.runtime.exception_as_opa_data writes approved exceptions.
        exceptions = [{"id": n, "reason_contains": "token budget", "match": [{"path": ["user", "id"],
                       "value": f"u-{100 + n}"}], "expires_ns": time.time_ns() + 3_600_000_000_000}
                      for n in range(20)]
        rollout = Rollout(mode="dry-run", enforce_percentage=25, enforce_users=("u-101",), dry_run_users=("u-140",))
        client.put("/v1/data/gavel_config", json={"kill_switch": False, "policies": {
            "agent_gateway": rollout_document(rollout, exceptions, kill_switch=False)}}).raise_for_status()

        rng = random.Random(11)
        inputs = []
        while len(inputs) < args.requests:
            path, document = random_request(rng)
            if path.endswith("agent_gateway/decision"):
                inputs.append(document)
        timings = {"bare": ([], []), "floor": ([], []), "entry": ([], [])}
        paths = {"bare": "/v1/data/gavel/agent_gateway/decision?metrics=true",
                 "floor": "/v1/data/gavel_floor/agent_gateway/decision?metrics=true",
                 "entry": "/v1/data/gavel_entry/agent_gateway/decision?metrics=true"}
        for warmup in inputs[:200]:
            for path in paths.values():
                client.post(path, json={"input": warmup})
        for document in inputs:
            for name in rng.sample(list(paths), len(paths)):
                started = time.perf_counter_ns()
                response = client.post(paths[name], json={"input": document})
                elapsed = time.perf_counter_ns() - started
                response.raise_for_status()
                timings[name][0].append(response.json()["metrics"]["timer_rego_query_eval_ns"])
                timings[name][1].append(elapsed)
    finally:
        stack.stop_process(opa, "bench OPA")

    rows, ratios, floors = [], {}, {}
    for label, index in (("OPA evaluation (timer_rego_query_eval_ns)", 0), ("HTTP round trip, client side", 1)):
        bare, floor, entry = (timings[name][index] for name in ("bare", "floor", "entry"))
        for stat, fn in (("p50", lambda v: percentile(v, 50)), ("p95", lambda v: percentile(v, 95)),
                         ("mean", statistics.fmean)):
            ratios[index, stat], floors[index, stat] = fn(entry) / fn(bare), fn(floor) / fn(bare)
            rows.append(f"| {label} | {stat} | {fn(bare) / 1000:.1f} µs | {fn(floor) / 1000:.1f} µs "
                        f"| {fn(entry) / 1000:.1f} µs | {floors[index, stat]:.2f}x | {ratios[index, stat]:.2f}x |")
    verdict = " and ".join(f"{stat} {ratios[0, stat]:.2f}x ({'met' if ratios[0, stat] <= TARGET else 'not met'})"
                           for stat in ("p50", "p95"))
    floor_verdict = " and ".join(f"{stat} {floors[0, stat]:.2f}x" for stat in ("p50", "p95"))
    load = " / ".join(f"{n:.1f}" for n in os.getloadavg())
    report = "\n".join([
        "# Entrypoint latency",
        "",
        f"Command: `.venv/bin/python bench/entrypoint_latency.py --requests {args.requests}`  ",
        f"Machine: {platform.machine()}, {os.cpu_count()} cores (shared), Python {platform.python_version()}, "
        f"OPA {stack.OPA_VERSION}; {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; load average {load} "
        f"at the end",
        "",
        f"{args.requests} agent-gateway inputs from the demo traffic generator, each sent to the bare policy, to the",
        "floor (below) and to Gavel's entrypoint, interleaved in random order. The entrypoint reads the configuration Gavel pushes",
        "(`rollout.runtime.rollout_document`): a 25% canary in dry-run, one enforced and one dry-run user, the",
        "kill switch off, 20 exceptions (users u-100 to u-119, for token-budget denials). The floor is the least",
        "any entrypoint with a canary does: the policy's decision passed through with the user's bucket, hashed and",
        "read as the entrypoint reads it, and nothing else (`FLOOR` in the bench).",
        "",
        "| measure | statistic | bare policy | floor | entrypoint | floor / bare | entry / bare |",
        "| --- | --- | --- | --- | --- | --- | --- |",
        *rows,
        "",
        f"**Target: OPA's evaluation time at most {TARGET}x the bare policy's at p50 and p95. Measured {verdict}.** "
        f"The floor alone takes {floor_verdict}.",
        "",
    ])
    RESULTS.write_text(report)
    print(report)


if __name__ == "__main__":
    main()
