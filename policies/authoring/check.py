"""Check a draft the way saving a version would (policies/services.py), and say what is wrong
line by line, for the editor to show at those lines. Nothing is saved.

The same checks as a save: `opa check` of the source, the package it must declare, the lint pass,
and with tests, `opa test` in the sandbox. A compile error stops the rest, as it stops a save.
"""
from __future__ import annotations

import re
from dataclasses import asdict, dataclass

from core.opa.cli import SandboxRefused
from policies.models import Policy
from policies.rego import lint
from policies.rego import tests as testing
from policies.rego.check import RegoCompileError, check_source

PACKAGE_LINE = re.compile(r"^\s*package\b", re.M)
TICKS = re.compile(r"`([^`]*)`")


@dataclass(frozen=True)
class Diagnostic:
    target: str  # "source" or "tests": which box of the form it belongs to
    row: int  # 1-based; 0 when OPA gave no line
    col: int
    severity: str  # "error" or "warning"
    message: str


@dataclass(frozen=True)
class DraftReport:
    diagnostics: list[Diagnostic]
    compiled: bool
    tests_total: int | None = None  # None: the tests were not run
    tests_failed: int = 0

    @property
    def errors(self) -> int:
        return sum(1 for d in self.diagnostics if d.severity == "error")

    @property
    def warnings(self) -> int:
        return sum(1 for d in self.diagnostics if d.severity == "warning")

    @property
    def verdict(self) -> str:
        """One sentence for the editor's status line."""
        if not self.compiled:
            return f"OPA could not compile this: {_count(self.errors, 'error')}."
        parts = ["Compiles"]
        if self.tests_total is not None:
            parts.append(f"{self.tests_total - self.tests_failed} of {_count(self.tests_total, 'test')} pass")
        if self.warnings:
            parts.append(_count(self.warnings, "lint warning"))
        if self.errors and self.tests_total is None:
            parts.append(_count(self.errors, "error"))
        return ", ".join(parts) + "."

    def as_json(self) -> dict:
        return {"compiled": self.compiled, "verdict": self.verdict, "errors": self.errors, "warnings": self.warnings,
                "diagnostics": [asdict(d) for d in self.diagnostics]}


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}{'' if n == 1 else 's'}"


def plain(message: str) -> str:
    """OPA's and the lint pass's messages quote names in backticks; people read quotes."""
    return TICKS.sub(lambda m: f"“{m.group(1)}”", message)


def from_compile_error(exc: RegoCompileError) -> list[Diagnostic]:
    """OPA's errors, each under the box it is located in (errors in `*_test.rego` belong to the tests)."""
    return [Diagnostic("tests" if e.file.endswith("_test.rego") else "source", e.row, e.col, "error", plain(e.message))
            for e in exc.errors]


def _package_row(source: str) -> int:
    match = PACKAGE_LINE.search(source)
    return source.count("\n", 0, match.start()) + 1 if match else 1


def check_draft(source: str, tests: str = "", *, policy: Policy | None = None, run_tests: bool = True) -> DraftReport:
    """Every problem a save would report for this draft, located at its line."""
    name = policy.name if policy else "policy"
    if not source.strip():
        return DraftReport([Diagnostic("source", 1, 1, "error", "The source is empty: a policy starts with "
                                                                "its package line.")], compiled=False)
    try:
        package = check_source(f"{name}.rego", source)
    except RegoCompileError as exc:
        return DraftReport(from_compile_error(exc), compiled=False)
    found: list[Diagnostic] = []
    if policy is not None and package != policy.package:
        found.append(Diagnostic("source", _package_row(source), 1, "error",
                                f"This declares package {package}, but the policy {policy.name} is {policy.package}: "
                                f"the version would be refused."))
    found += [Diagnostic("source", w.row, 1, "warning", plain(w.message)) for w in lint.lint_source(f"{name}.rego",
                                                                                                  source)]
    total = failed = None
    if run_tests and tests.strip():
        try:
            report = testing.run_tests(name, source, tests)
        except RegoCompileError as exc:
            found += from_compile_error(exc)
        except SandboxRefused as exc:
            found.append(Diagnostic("tests", 0, 0, "error", plain(str(exc))))
        else:
            total, failed = len(report.results), report.failed
            for result in report.results:
                if result["status"] in ("fail", "error"):
                    why = f": {result['error']}" if result.get("error") else ""
                    found.append(Diagnostic("tests", int(result.get("row") or 0), 1, "error",
                                            f"{result['name']} {'fails' if result['status'] == 'fail' else 'errs'}"
                                            f"{plain(why)}"))
    return DraftReport(sorted(found, key=lambda d: (d.target, d.row)), compiled=True, tests_total=total,
                       tests_failed=failed or 0)
