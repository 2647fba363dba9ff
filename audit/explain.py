"""Explain a stored decision: re-evaluate its input against the version that decided, in Gavel's
own sandboxed OPA (core/opa/local.py) with OPA's full explanation on, and turn the trace into
something a person can read.

The version is loaded the way a replay loads a candidate (core/evaluation.py): under a scratch
package, beside a harness that reads the policy's own verdict the way the entrypoint does and a
log filter that keeps the query off the audit trail; all three are deleted afterwards. What is
explained is the policy's own answer: the entrypoint's rollout (dry-run, exceptions) comes after.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field

from core.models import Decision, Outcome
from core.opa import evaluation
from core.opa.client import OpaClient, OpaError
from core.opa.local import LocalOpa
from core.outcomes import derive_outcome

MAX_TRACE_LINES = 2000

# OPA's pretty trace: `<module>:<row>  | | <Op> <text>`, one event a line.
TRACE_LINE = re.compile(r"^(?P<module>\S+):(?P<row>\d+)\s+(?P<bars>(?:\| ?)*)(?P<op>[A-Z][a-z]+)(?: (?P<text>.*))?$")


class ExplainUnavailable(Exception):
    """The decision cannot be re-evaluated; the message says why, for the page."""


@dataclass(frozen=True)
class TraceLine:
    where: str  # "policy", "verdict" (Gavel's harness) or "query"
    row: int | None
    depth: int
    op: str
    text: str

    @property
    def indent(self) -> int:
        return min(self.depth, 5)  # the css indents five steps; deeper lines keep the fifth


@dataclass(frozen=True)
class FiredRule:
    """A rule of the policy that held for this input, with its line of source."""

    name: str
    row: int
    source_line: str
    gives_reason: bool  # the line names one of the verdict's reasons


@dataclass
class Explanation:
    decision: Decision
    verdict: object
    outcome: str
    reasons: list[str]
    recorded_outcome: str | None  # the policy's recorded answer, when it can be compared
    lines: list[TraceLine] = field(default_factory=list)
    omitted: int = 0
    fired: list[FiredRule] = field(default_factory=list)

    @property
    def masked(self) -> list[str]:
        return self.decision.masked

    @property
    def agrees(self) -> bool | None:
        return None if self.recorded_outcome is None else self.recorded_outcome == self.outcome

    def get_outcome_display(self) -> str:
        return Outcome(self.outcome).label


def readable(lines: list[str], names: dict[str, str], modules: dict[str, str]) -> list[TraceLine]:
    """OPA's trace lines with Gavel's scratch names put back to what the author wrote."""
    parsed = []
    for raw in lines:
        for scratch, original in names.items():
            raw = raw.replace(scratch, original)
        match = TRACE_LINE.match(raw)
        if not match:
            parsed.append(TraceLine("", None, 0, "", raw))
            continue
        module = match["module"]
        parsed.append(TraceLine(modules.get(module, module), int(match["row"]), match["bars"].count("|"),
                                match["op"], match["text"] or ""))
    return parsed


def fired_rules(lines: list[TraceLine], package: str, source: str, reasons: list[str]) -> list[FiredRule]:
    """The policy's rules that exited (held) during the evaluation, in source order."""
    prefix = f"data.{package}."
    source_lines = source.split("\n")
    found = {}
    for line in lines:
        if line.where != "policy" or line.op != "Exit" or not line.text.startswith(prefix) or not line.row:
            continue
        name = line.text[len(prefix):].split(" ")[0]
        text = source_lines[line.row - 1].strip() if line.row <= len(source_lines) else ""
        found[(line.row, name)] = FiredRule(name, line.row, text, any(reason and reason in text for reason in reasons))
    return [found[key] for key in sorted(found)]


def evaluate(decision: Decision, client: OpaClient | LocalOpa) -> Explanation:
    version = decision.version
    try:
        with evaluation.loaded(client, version.source, "explain") as scratch:
            rows, trace = client.query_explained(f"verdict := data.{scratch.harness}.verdict", decision.input)
    except evaluation.CannotLoad as exc:
        raise ExplainUnavailable(f"the version's source could not be prepared for OPA: {exc}") from exc
    except OpaError as exc:
        raise ExplainUnavailable(f"OPA could not evaluate the version: {exc}") from exc

    verdict = rows[0]["verdict"] if rows else None
    outcome, reasons = derive_outcome() if verdict is None else derive_outcome(verdict)
    policy_package = version.policy.package
    # The harness first: its name starts with the policy's scratch name.
    names = {f"data.{scratch.harness}": "data.gavel_verdict", f"data.{scratch.package}": f"data.{policy_package}"}
    modules = {scratch.ids["policy"]: "policy", scratch.ids["verdict"]: "verdict"}
    lines = readable(trace, names, modules)
    before = evaluation.recorded(decision)
    return Explanation(
        decision=decision, verdict=verdict, outcome=outcome, reasons=reasons,
        recorded_outcome=None if isinstance(before, str) else str(before.outcome),
        lines=lines[:MAX_TRACE_LINES], omitted=max(0, len(lines) - MAX_TRACE_LINES),
        fired=fired_rules(lines, policy_package, version.source, reasons),
    )


def explain(decision: Decision, client: OpaClient | LocalOpa | None = None) -> Explanation:
    """Re-evaluate `decision`'s stored input against the version that decided it, explained."""
    if decision.version is None:
        raise ExplainUnavailable("Gavel does not know which policy version made this decision, so it "
                                 "cannot re-evaluate it.")
    if decision.input is None:
        raise ExplainUnavailable("The decision was logged without its input, so there is nothing to re-evaluate.")
    if client is not None:
        return evaluate(decision, client)
    with LocalOpa() as client:  # authors' Rego runs in Gavel's sandbox, never in the fleet's OPA
        return evaluate(decision, client)
