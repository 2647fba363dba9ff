"""`make test` in shards side by side: each shard is a pytest process with its own Postgres,
Redis and OPA (scripts/stack.py profiles test, test2, ...), so the suite takes about half as
long on two cores. Files are dealt to shards by how long they took last time
(tests/durations.json; `GAVEL_RECORD_DURATIONS=1 make test` rewrites it), longest first.
Each shard's lines are printed as they come, prefixed with its number; the run fails if any
shard fails.

    python scripts/test_shards.py [--shards 2] [-- extra pytest arguments]
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import threading
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DURATIONS = ROOT / "tests" / "durations.json"
PROFILES = ["test", "test2", "test3", "test4"]


def test_files() -> list[str]:
    return sorted(str(path.relative_to(ROOT)) for path in (ROOT / "tests").rglob("test_*.py"))


def deal(files: list[str], durations: dict[str, float], shards: int) -> list[list[str]]:
    """Longest first, each file to the shard with the least work so far."""
    known = [seconds for seconds in durations.values() if seconds > 0]
    default = sorted(known)[len(known) // 2] if known else 10.0
    dealt: list[list[str]] = [[] for _ in range(shards)]
    load = [0.0] * shards
    for name in sorted(files, key=lambda f: (-durations.get(f, default), f)):
        lightest = load.index(min(load))
        dealt[lightest].append(name)
        load[lightest] += durations.get(name, default)
    return [sorted(files, key=runs_last) for files in dealt if files]


def runs_last(name: str) -> tuple[int, str]:
    """The fault tests restart their shard's own Postgres and Redis (the cluster drills, a replica):
    they go after everything else, so no other test meets a connection they broke. Before them,
    the tests that wait for a build on a fresh machine: the CI checks (conftest) and the
    object-storage tests (the S3 server)."""
    waits_for_a_build = name.startswith("tests/checks/") or name == "tests/fleet/test_bundle_storage.py"
    return (2 if name.startswith(("tests/faults/", "tests/cluster/")) else 1 if waits_for_a_build else 0), name


def run_shard(number: int, profile: str, files: list[str], extra: list[str], results: dict,
              failures: list[str]) -> None:
    command = [sys.executable, "scripts/stack.py", "exec", "--profile", profile, "--",
               str(Path(sys.executable).parent / "pytest"), "-p", "no:cacheprovider", *extra, *files]
    process = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    for line in process.stdout:
        sys.stdout.write(f"[{number}] {line}")
        sys.stdout.flush()
        # pytest's short summary (-ra) names test files; a captured log line at level ERROR does not.
        if line.startswith(("FAILED tests/", "ERROR tests/")):
            failures.append(f"[{number}] {line.rstrip()}")
    code = process.wait()
    results[number] = 0 if code == NO_TESTS_SELECTED else code  # a -k that leaves a shard nothing to run


NO_TESTS_SELECTED = 5  # pytest's exit code


def prepare() -> None:
    """OPA (which CI starts building before pip runs) and the test database's schema, side by side:
    the schema is migrated and dumped once here (tests/schema_cache.py) and every shard restores it."""
    opa = subprocess.Popen([sys.executable, "scripts/stack.py", "opa-binary"], cwd=ROOT, stdout=subprocess.DEVNULL)
    schema = subprocess.run([sys.executable, "scripts/stack.py", "exec", "--profile", PROFILES[0], "--",
                             sys.executable, "-m", "tests.schema_cache"], cwd=ROOT)
    if opa.wait() != 0 or schema.returncode != 0:
        sys.exit("[gavel] could not build OPA or the test database's schema (above)")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--shards", type=int, default=2, choices=range(1, len(PROFILES) + 1))
    parser.add_argument("pytest_args", nargs=argparse.REMAINDER)
    args = parser.parse_args()
    extra = args.pytest_args[1:] if args.pytest_args[:1] == ["--"] else args.pytest_args
    durations = json.loads(DURATIONS.read_text()) if DURATIONS.exists() else {}
    shards = deal(test_files(), durations, args.shards)
    prepare()
    results: dict[int, int] = {}
    failures: list[str] = []
    # conftest (tests/checks only) and the S3 server (tests/fleet/test_bundle_storage.py) build beside
    # the shards instead of before them; the tests that need them run late in their shard and wait
    # on the build's lock (scripts/go_tools.py). At normal priority: starved by three shards, a
    # build finished last and held its shard's end by minutes.
    builds = [subprocess.Popen([sys.executable, script, command], cwd=ROOT, stdout=subprocess.DEVNULL)
              for script, command in (("scripts/stack.py", "conftest-binary"),
                                      ("scripts/stack.py", "versitygw-binary"))]
    threads = [threading.Thread(target=run_shard, args=(n + 1, PROFILES[n], files, extra, results, failures))
               for n, files in enumerate(shards)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for build in builds:
        build.wait()
    # Repeated last: a CI log is often read from its tail, where the shards' summaries are long gone.
    for line in failures:
        print(line)
    for number, code in sorted(results.items()):
        print(f"[gavel] shard {number} ({len(shards[number - 1])} files): {'passed' if code == 0 else f'FAILED ({code})'}")
    return max(results.values(), default=1)


if __name__ == "__main__":
    sys.exit(main())
