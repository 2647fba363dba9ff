"""Soak the ingest contract: the property test of tests/audit/test_ingest_property.py with many
more generated batches than `make test` tries, against real services (the `bench` stack).

    .venv/bin/python bench/ingest_soak.py --examples 300

Writes what it ran and how it ended to bench/results/ingest_soak.md.
"""
from __future__ import annotations

import argparse
import os
import platform
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results" / "ingest_soak.md"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--examples", type=int, default=300)
    args = parser.parse_args()
    command = [sys.executable, "scripts/stack.py", "exec", "--profile", "bench", "--", str(Path(sys.executable).parent / "pytest"),
               "-q", "-p", "no:cacheprovider", "tests/audit/test_ingest_property.py"]
    started = time.perf_counter()
    done = subprocess.run(command, cwd=ROOT, env={**os.environ, "GAVEL_INGEST_EXAMPLES": str(args.examples)},
                          capture_output=True, text=True)
    seconds = time.perf_counter() - started
    summary = [line for line in done.stdout.splitlines() if " passed" in line or " failed" in line]
    RESULTS.write_text(
        f"# Ingest soak\n\n`.venv/bin/python bench/ingest_soak.py --examples {args.examples}` on "
        f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC, {platform.machine()}, {os.cpu_count()} cores.\n\n"
        f"{args.examples} generated decision-log batches (plus two fixed ones) through the real upload endpoint "
        f"and worker, each refused whole with a 4xx or stored whole and shown by every page: "
        f"**{'all held' if done.returncode == 0 else 'FAILED'}** in {seconds:.0f} s "
        f"({summary[-1].strip() if summary else 'no summary'}).\n")
    log = ROOT / ".gavel" / "bench" / "ingest_soak.log"  # the whole run, falsifying example included
    log.parent.mkdir(parents=True, exist_ok=True)
    log.write_text(done.stdout + done.stderr)
    failures = [line for line in done.stdout.splitlines() if line.startswith(("E ", "Falsifying"))]
    sys.stdout.write("\n".join(failures[:80]) + f"\n{summary[-1] if summary else ''}\nfull output: {log}\n")
    return done.returncode


if __name__ == "__main__":
    sys.exit(main())
