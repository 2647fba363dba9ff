"""A version's Rego tests, run with the real `opa test` when the version is saved, in Gavel's
sandbox (core/opa/sandbox.py): tests that call `http.send` or `opa.runtime` are refused in words."""
from __future__ import annotations

import json
import tempfile
from dataclasses import dataclass
from pathlib import Path

from core.opa import cli as opa_cli
from policies.models import VersionTestRun
from policies.rego.check import RegoCompileError, RegoError, errors_from


@dataclass(frozen=True)
class TestReport:
    results: list[dict]  # one per test: name, package, row, status, duration_ms
    coverage: float | None  # percent of the policy's lines; OPA reports it only when every test passes
    not_covered_rows: list[int]

    @property
    def failed(self) -> int:
        return sum(1 for r in self.results if r["status"] in ("fail", "error"))

    @property
    def passed(self) -> bool:
        return self.failed == 0


def _status(item: dict) -> str:
    if item.get("error"):
        return "error"
    if item.get("fail"):
        return "fail"
    if item.get("skip"):
        return "skip"
    return "pass"


def run_tests(policy_name: str, source: str, tests: str) -> TestReport:
    """Run `tests` against `source` with `opa test`. Raises RegoCompileError (located in
    `<name>_test.rego`) when the tests do not compile together with the policy, or when the
    sandbox refuses them (a builtin Gavel does not offer, a time or memory limit)."""
    policy_file, test_file = f"{policy_name}.rego", f"{policy_name}_test.rego"
    try:
        return _run_tests(policy_file, test_file, source, tests)
    except opa_cli.SandboxRefused as exc:
        raise RegoCompileError([RegoError(test_file, 0, 0, "sandbox", str(exc))]) from exc


def _run_tests(policy_file: str, test_file: str, source: str, tests: str) -> TestReport:
    with tempfile.TemporaryDirectory(prefix="gavel-test-") as tmp:
        (Path(tmp) / policy_file).write_text(source, encoding="utf-8")
        (Path(tmp) / test_file).write_text(tests, encoding="utf-8")
        # `opa check` first: it reports compile errors as JSON with file and line, `opa test` does not.
        checked = opa_cli.run("check", "--format", "json", ".", cwd=tmp, timeout=120)
        if checked.returncode != 0:
            raise RegoCompileError(errors_from(checked.stdout or checked.stderr, test_file))
        # Two runs: with --coverage OPA prints the coverage report instead of the per-test results.
        ran = opa_cli.run("test", "--format", "json", ".", cwd=tmp, timeout=120)
        try:
            raw = json.loads(ran.stdout or "[]")
        except ValueError:
            raise RegoCompileError([RegoError(test_file, 0, 0, "opa_test", (ran.stderr or ran.stdout).strip()[:2000])])
        results = [
            {"name": item.get("name", ""), "package": item.get("package", "").removeprefix("data."),
             "row": (item.get("location") or {}).get("row", 0), "status": _status(item),
             "duration_ms": round(item.get("duration", 0) / 1_000_000, 3),
             "error": (item.get("error") or {}).get("message", "") if isinstance(item.get("error"), dict) else ""}
            for item in raw
        ]
        coverage, not_covered = None, []
        if all(r["status"] not in ("fail", "error") for r in results):
            covered = opa_cli.run("test", "--format", "json", "--coverage", ".", cwd=tmp, timeout=120)
            if covered.returncode == 0:
                report = json.loads(covered.stdout).get("files", {}).get(policy_file, {})
                coverage = float(report.get("coverage", 0.0))
                not_covered = sorted({row for span in report.get("not_covered", [])
                                      for row in range(span["start"]["row"], span["end"]["row"] + 1)})
    return TestReport(results=results, coverage=coverage, not_covered_rows=not_covered)


def record(version, report: TestReport):
    return VersionTestRun.objects.create(
        version=version, passed=report.passed, total=len(report.results), failed=report.failed,
        results=report.results, coverage=report.coverage, not_covered_rows=report.not_covered_rows,
    )
