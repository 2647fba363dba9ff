"""The lint pass: traps in a policy that compiles fine but fails open.

It reads OPA's own parse tree (`opa parse --format json`), never the source text, so
comments, strings and formatting cannot fool it. Three checks:

- default-allow: a security rule whose default is allow (`default allow := true`);
- no-default: a decision rule (allow, decision, require_approval) that is conditional
  but has no default, so it is undefined, not false, when no condition holds;
- allow-over-deny: in a package with deny rules, an `allow` definition that does not
  depend on the absence of a denial, so it can allow what a deny rule refuses.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from core.opa.cli import parse
from policies.models import LintWarning

ALLOW_RULES = {"allow"}
DENY_RULES = {"deny", "violation"}
DECISION_RULES = {"allow", "decision", "require_approval"}


@dataclass(frozen=True)
class Finding:
    code: str
    row: int
    message: str


def rule_name(rule: dict) -> str | None:
    """The name of a rule with a plain one-word head (`allow`, `deny contains ...`)."""
    ref = rule["head"].get("ref") or []
    if len(ref) == 1 and ref[0].get("type") == "var":
        return ref[0]["value"]
    return None


def _row(node: dict) -> int:
    return int((node.get("location") or {}).get("row") or 0)


def _vars(node: Any) -> set[str]:
    """Every variable name a piece of the tree mentions (rule references included)."""
    found: set[str] = set()
    if isinstance(node, dict):
        if node.get("type") == "var" and isinstance(node.get("value"), str):
            found.add(node["value"])
        for key, value in node.items():
            if key != "location":
                found |= _vars(value)
    elif isinstance(node, list):
        for item in node:
            found |= _vars(item)
    return found


def _is_trivial(body: list) -> bool:
    """The generated `true` body of an unconditional rule."""
    terms = body[0].get("terms") if len(body) == 1 else None
    return isinstance(terms, dict) and terms.get("type") == "boolean" and terms.get("value") is True


def _is_total(rule: dict) -> bool:
    """Defined whatever the input: unconditional, or an else chain ending unconditionally."""
    while rule is not None:
        if _is_trivial(rule.get("body", [])):
            return True
        rule = rule.get("else")
    return False


class _Module:
    def __init__(self, tree: dict):
        self.rules: dict[str, list[dict]] = {}
        for rule in tree.get("rules", []):
            name = rule_name(rule)
            if name is not None and "args" not in rule["head"]:
                self.rules.setdefault(name, []).append(rule)
        self.deny_names = DENY_RULES & set(self.rules)

    def reaches_deny(self, names: set[str], seen: frozenset = frozenset()) -> bool:
        """Whether these names are, or depend on, a deny rule of this package."""
        if names & self.deny_names:
            return True
        for name in (names & set(self.rules)) - seen:
            if any(self.reaches_deny(_vars(r.get("body", [])) | _vars(r["head"].get("value")), seen | {name})
                   for r in self.rules[name]):
                return True
        return False

    def _is_empty_check(self, expr: dict) -> bool:
        """`count(deny) == 0`, `count(deny) < 1` or `count(deny) <= 0`."""
        terms = expr.get("terms")
        if not isinstance(terms, list) or len(terms) != 3:
            return False
        op = ".".join(str(t.get("value")) for t in terms[0].get("value", []))
        allowed_bound = {"equal": 0, "lt": 1, "lte": 0}.get(op)
        counted, bound = terms[1], terms[2]
        if allowed_bound is None or counted.get("type") != "call" or bound.get("value") != allowed_bound:
            return False
        callee = counted["value"][0].get("value", [])
        return bool(callee) and callee[0].get("value") == "count" and self.reaches_deny(_vars(counted["value"][1:]))

    def guarded(self, body: list, seen: frozenset = frozenset()) -> bool:
        """Whether a rule body holds only when nothing is denied."""
        for expr in body:
            if expr.get("negated") and self.reaches_deny(_vars(expr.get("terms"))):
                return True
            if self._is_empty_check(expr):
                return True
            terms = expr.get("terms")
            if not expr.get("negated") and isinstance(terms, dict) and terms.get("type") == "var":
                helper = terms["value"]  # a bare helper rule, e.g. `no_denials`
                if helper in self.rules and helper not in seen and all(
                    self.guarded(r.get("body", []), seen | {helper}) for r in self.rules[helper] if not r.get("default")
                ):
                    return True
        return False


def _allows(value: Any) -> bool:
    if not isinstance(value, dict):
        return False
    if value.get("type") == "boolean":
        return value.get("value") is True
    if value.get("type") == "object":
        return any(k.get("value") == "allow" and v.get("type") == "boolean" and v.get("value") is True
                   for k, v in value.get("value", []))
    return False


def lint_tree(tree: dict) -> list[Finding]:
    module = _Module(tree)
    warnings = []
    for name, rules in module.rules.items():
        defaults = [r for r in rules if r.get("default")]
        for rule in defaults:
            if name in DECISION_RULES - {"require_approval"} and _allows(rule["head"].get("value")):
                warnings.append(Finding("default-allow", _row(rule),
                                        f"`default {name}` allows: every request no rule refuses is let through"))
        complete = [r for r in rules if "key" not in r["head"] and not r.get("default")]
        if name in DECISION_RULES and complete and not defaults and not all(_is_total(r) for r in complete):
            warnings.append(Finding("no-default", _row(complete[0]),
                                    f"`{name}` has no default: when none of its conditions holds it is undefined, "
                                    f"not false; add `default {name} := false`"))
        if name in ALLOW_RULES and module.deny_names:
            for rule in complete:
                if not module.guarded(rule.get("body", [])):
                    warnings.append(Finding(
                        "allow-over-deny", _row(rule),
                        f"this `{name}` does not check that nothing is denied "
                        f"({', '.join(sorted(module.deny_names))}), so it can allow a request a deny rule refuses",
                    ))
    return sorted(warnings, key=lambda w: (w.row, w.code))


def lint_source(filename: str, source: str) -> list[Finding]:
    return lint_tree(parse(filename, source))


def record(version, warnings: list[Finding]) -> None:
    LintWarning.objects.bulk_create(
        LintWarning(version=version, code=w.code, row=w.row, message=w.message[:500]) for w in warnings
    )
