"""The playground: evaluate any input against a draft (unsaved source) or a saved version, in
Gavel's sandboxed OPA (core/opa/local.py, never the fleet's), and say what it decided, why in the
summary's words, and which rules held. Nothing is saved and nothing reaches the audit trail.

The verdict is read the way enforcement points get it (core/opa/evaluation.py's harness: the
policy's own answer, before any rollout), as replay and explain read it.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from core.models import Outcome
from core.opa import evaluation
from core.opa.client import OpaError
from core.opa.fired import FiredRule, explained, fired_rules
from core.opa.local import LocalOpa
from policies import services, summaries
from policies.summaries import ast as rego_ast
from policies.summaries import outside
from policies.models import Policy, PolicyVersion
from policies.rego.check import RegoCompileError, check_source

MAX_INPUT_BYTES = 1_000_000


class PlaygroundError(ValueError):
    """The input or the draft cannot be evaluated; the message says why, for the page."""


@dataclass
class PlaygroundResult:
    outcome: str
    reasons: list[str]
    verdict: Any
    fired: list[FiredRule] = field(default_factory=list)
    defaults: list[str] = field(default_factory=list)  # the summary's default statements
    data_note: str = ""  # which outside data it was evaluated with, or why without some of it

    @property
    def deciding(self) -> list[FiredRule]:
        return [rule for rule in self.fired if rule.gives_reason]

    @property
    def sentences(self) -> list[str]:
        """Why, in the summary's words: the sentence of each rule that decided, else the defaults."""
        said = [rule.sentence for rule in self.deciding if rule.sentence]
        if said or self.deciding:
            return list(dict.fromkeys(said))
        if self.outcome == Outcome.ALLOW:
            return ["No rule that denies or requires approval held for this input."]
        return self.defaults

    def get_outcome_display(self) -> str:
        return Outcome(self.outcome).label

    @property
    def verdict_json(self) -> str:
        return json.dumps(self.verdict, indent=2, sort_keys=True, ensure_ascii=False)


def parse_input(text: str) -> Any:
    """The input document from the form: JSON, at most MAX_INPUT_BYTES."""
    if not text.strip():
        raise PlaygroundError("Give an input as a JSON document, for example {\"user\": {\"id\": \"ann\"}}.")
    if len(text.encode("utf-8")) > MAX_INPUT_BYTES:
        raise PlaygroundError(f"The input is larger than {MAX_INPUT_BYTES // 1000} kB, the most the playground takes.")
    try:
        return json.loads(text)
    except ValueError as exc:
        raise PlaygroundError(f"The input is not JSON: {exc}.") from None


def _summary(source: str, policy: Policy, version: PolicyVersion | None) -> dict:
    try:
        if version is not None and version.source == source:
            return summaries.summary_for_version(version)
        return summaries.summarize(source, f"{policy.name}.rego", with_examples=False)
    except Exception:  # noqa: BLE001 - the summary only names the rules; the evaluation stands without it
        return {}


def outside_data(policy: Policy, source: str, version: PolicyVersion | None) -> outside.DataRead | None:
    """The data the source reads outside itself, as the environment's OPA holds it (as its summary
    reads it), so the playground decides as that environment would; None when it reads none."""
    try:
        paths = rego_ast.load(source, f"{policy.name}.rego").data_paths
    except Exception:  # noqa: BLE001 - compile errors are reported by the evaluation itself
        return None
    if not paths:
        return None
    return outside.read(version or policy.latest_version, paths)


def _data_note(read: outside.DataRead | None) -> str:
    if read is None:
        return ""
    if read.data is None:
        return f"Evaluated without the data it reads outside itself: {read.problem}."
    used = f"Evaluated with {', '.join(outside.dotted(p) for p in read.paths if p not in read.missing)} " \
           f"as {read.where} holds it" if len(read.missing) < len(read.paths) else ""
    return "; ".join(filter(None, (used, read.problem))) + "."


def evaluate(policy: Policy, source: str, input_text: str, *, version: PolicyVersion | None = None,
             client: LocalOpa | None = None) -> PlaygroundResult:
    """Evaluate `input_text` (JSON) against `source`, a draft of `policy` or the source of `version`."""
    document = parse_input(input_text)
    try:
        package = check_source(f"{policy.name}.rego", source)
    except RegoCompileError as exc:
        where = "; ".join(f"line {e.row}: {e.message}" if e.row else e.message for e in exc.errors)
        raise PlaygroundError(f"OPA could not compile the draft: {where}") from exc
    read = outside_data(policy, source, version)
    own = client or LocalOpa()
    try:
        with own:
            for name, held in ((read.data or {}) if read else {}).items():
                own.put_data(name, held)
            found = explained(own, source, package, document, "playground")
    except evaluation.CannotLoad as exc:
        raise PlaygroundError(f"The draft could not be prepared for OPA: {exc}") from exc
    except OpaError as exc:
        raise PlaygroundError(f"OPA could not evaluate it: {exc}") from exc
    verdict, outcome, reasons, lines = found.verdict, found.outcome, found.reasons, found.lines
    summary = _summary(source, policy, version)
    return PlaygroundResult(
        outcome=str(outcome), reasons=reasons, verdict=verdict,
        fired=fired_rules(lines, package, source, reasons, str(outcome), services.rules_by_row(summary)),
        defaults=[d.get("text", "") for d in summary.get("defaults", []) if d.get("text")],
        data_note=_data_note(read),
    )
