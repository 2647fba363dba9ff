#!/usr/bin/env python
"""Rerun every benchmark, one after another, each as its own documentation says to run it.

Each writes its figures to bench/results/<name>.md: the command, the machine, the date, and the
ratio against its baseline measured in the same run. Run it inside the bench stack, which gives
the benchmarks that need them a Postgres and a Redis of their own (`make bench` does this):

    .venv/bin/python scripts/stack.py exec --profile bench -- .venv/bin/python bench/run_all.py [--only NAME ...]

Exits non-zero when any benchmark failed; the others still run.
"""
import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

# In the order they run: the quick ones first. Each with its default arguments.
BENCHMARKS = [
    "entrypoint_latency",
    "replay_throughput",
    "export_throughput",
    "replica_lag",
    "ingest_soak",
    "ingest_burst",
    "audit_scale",
    "ingest_breakdown",  # on the table audit_scale leaves
    "pages_at_scale",  # likewise
]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", nargs="+", choices=BENCHMARKS, help="run just these")
    parser.add_argument("--skip", nargs="+", choices=BENCHMARKS, default=[], help="run all but these")
    args = parser.parse_args()
    if not os.environ.get("DATABASE_URL"):
        print("run_all: no DATABASE_URL; run it inside a stack: scripts/stack.py exec --profile bench -- ...",
              file=sys.stderr)
        return 2
    chosen = [name for name in (args.only or BENCHMARKS) if name not in args.skip]
    outcomes = []
    for name in chosen:
        print(f"\n=== {name} ===", flush=True)
        started = time.monotonic()
        code = subprocess.run([sys.executable, str(ROOT / "bench" / f"{name}.py")], cwd=ROOT).returncode
        outcomes.append((name, code, time.monotonic() - started))
    print("\n=== summary ===")
    for name, code, seconds in outcomes:
        print(f"{name:20s} {'ok' if code == 0 else f'failed ({code})':12s} {seconds:8.0f} s  "
              f"bench/results/{name}.md")
    return 0 if all(code == 0 for _, code, _ in outcomes) else 1


if __name__ == "__main__":
    sys.exit(main())
