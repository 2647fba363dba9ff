"""Which of a policy's rules held in one evaluation, read from OPA's own trace (`--explain full`):
what explain (audit/explain.py) and the playground (policies/authoring/) both show.

A rule held when OPA's trace reports it exiting in the policy's module. Defaults and constants
(rules without a condition, such as `allowed_tools := {...}` or `default allow := false`) also
exit whenever they are read; they held nothing about this input, so they are left out. Which
rules are which comes from OPA's parse tree, never from the text.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from ..outcomes import derive_outcome
from . import evaluation
from .cli import parse

# OPA's pretty trace: `<module>:<row>  | | <Op> <text>`, one event a line.
TRACE_LINE = re.compile(r"^(?P<module>\S+):(?P<row>\d+)\s+(?P<bars>(?:\| ?)*)(?P<op>[A-Z][a-z]+)(?: (?P<text>.*))?$")

# The rules whose holding gives the outcome its reasons, by outcome.
DECIDING = {"deny": {"deny", "violation", "reasons"}, "allow": {"allow"},
            "require_approval": {"require_approval"}, "would_deny": {"deny", "violation", "reasons"}}


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
    gives_reason: bool  # this rule decided: it gave the outcome (or one of its reasons)
    title: str = ""  # what people call it: its METADATA title, else its plain-language sentence
    sentence: str = ""  # the summary's sentence for it, when there is one


@dataclass(frozen=True)
class Explained:
    """The policy's own verdict for one input, what it makes the outcome, and OPA's trace."""

    verdict: Any
    outcome: str
    reasons: list[str]
    lines: list[TraceLine]


def explained(client, source: str, package: str, document: Any, scratch_name: str) -> Explained:
    """Evaluate `document` against `source` (package `package`) under a scratch name with OPA's
    full explanation on, the trace's names put back to the author's. `client` is Gavel's sandbox
    (LocalOpa) for authors' Rego. Raises evaluation.CannotLoad or OpaError."""
    with evaluation.loaded(client, source, scratch_name) as scratch:
        rows, trace = client.query_explained(f"verdict := data.{scratch.harness}.verdict", document)
    verdict = rows[0]["verdict"] if rows else None
    outcome, reasons = derive_outcome() if verdict is None else derive_outcome(verdict)
    # The harness first: its name starts with the policy's scratch name.
    names = {f"data.{scratch.harness}": "data.gavel_verdict", f"data.{scratch.package}": f"data.{package}"}
    modules = {scratch.ids["policy"]: "policy", scratch.ids["verdict"]: "verdict"}
    return Explained(verdict, outcome, reasons, readable(trace, names, modules))


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


def _unconditional(rule: dict) -> bool:
    body = rule.get("body") or []
    terms = body[0].get("terms") if len(body) == 1 else None
    return not body or (isinstance(terms, dict) and terms.get("type") == "boolean" and terms.get("value") is True)


def constant_rows(source: str) -> set[int]:
    """The rows of rules that hold whatever the input: defaults and rules without a condition.
    A source OPA cannot parse gives none (the evaluation reported it already)."""
    try:
        tree = parse("policy.rego", source)
    except ValueError:
        return set()
    rows = set()
    for rule in tree.get("rules", []):
        if rule.get("default") or (_unconditional(rule) and not rule.get("else")):
            rows.add(int((rule.get("location") or {}).get("row") or 0))
    return rows


def fired_rules(lines: list[TraceLine], package: str, source: str, reasons: list[str], outcome: str = "",
                rules: dict[int, dict] | None = None) -> list[FiredRule]:
    """The policy's rules that held during the evaluation, in source order, constants and defaults
    left out. `rules` (the summary's record of each rule, by its first row) gives their titles."""
    prefix = f"data.{package}."
    source_lines = source.split("\n")
    skip = constant_rows(source)
    rules = rules or {}
    deciding = DECIDING.get(str(outcome), set())
    found = {}
    for line in lines:
        if line.where != "policy" or line.op != "Exit" or not line.text.startswith(prefix) or not line.row:
            continue
        if line.row in skip:
            continue
        name = line.text[len(prefix):].split(" ")[0]
        text = source_lines[line.row - 1].strip() if line.row <= len(source_lines) else ""
        record = rules.get(line.row) or {}
        gives = name in deciding or any(reason and reason in text for reason in reasons)
        found[(line.row, name)] = FiredRule(name, line.row, text, gives,
                                            title=record.get("title") or record.get("sentence") or "",
                                            sentence=record.get("sentence") or "")
    return [found[key] for key in sorted(found)]
