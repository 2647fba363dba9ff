"""Explain a stored decision: re-evaluate its input against the version that decided, in Gavel's
own sandboxed OPA (core/opa/local.py) with OPA's full explanation on, and turn the trace into
something a person can read.

The version is loaded the way a replay loads a candidate (core/evaluation.py): under a scratch
package, beside a harness that reads the policy's own verdict the way the entrypoint does and a
log filter that keeps the query off the audit trail; all three are deleted afterwards. What is
explained is the policy's own answer: the entrypoint's rollout (dry-run, exceptions) comes after.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from core.models import Decision, Outcome
from core.opa import evaluation
from core.opa.client import OpaClient, OpaError
from core.opa.fired import FiredRule, TraceLine, explained, fired_rules
from core.opa.local import LocalOpa
from policies import services as policy_services

MAX_TRACE_LINES = 2000

__all__ = ["ExplainUnavailable", "Explanation", "FiredRule", "TraceLine", "explain", "evaluate"]


class ExplainUnavailable(Exception):
    """The decision cannot be re-evaluated; the message says why, for the page."""


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

    @property
    def deciding(self) -> list[FiredRule]:
        """The rules that gave the outcome (or its reasons), named first on the page."""
        return [rule for rule in self.fired if rule.gives_reason]


def evaluate(decision: Decision, client: OpaClient | LocalOpa) -> Explanation:
    version = decision.version
    policy_package = version.policy.package
    try:
        found = explained(client, version.source, policy_package, decision.input, "explain")
    except evaluation.CannotLoad as exc:
        raise ExplainUnavailable(f"the version's source could not be prepared for OPA: {exc}") from exc
    except OpaError as exc:
        raise ExplainUnavailable(f"OPA could not evaluate the version: {exc}") from exc
    verdict, outcome, reasons, lines = found.verdict, found.outcome, found.reasons, found.lines
    before = evaluation.recorded(decision)
    return Explanation(
        decision=decision, verdict=verdict, outcome=outcome, reasons=reasons,
        recorded_outcome=None if isinstance(before, str) else str(before.outcome),
        lines=lines[:MAX_TRACE_LINES], omitted=max(0, len(lines) - MAX_TRACE_LINES),
        fired=fired_rules(lines, policy_package, version.source, reasons, outcome,
                          policy_services.version_rules(version)),
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
