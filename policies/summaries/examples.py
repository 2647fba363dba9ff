"""Worked examples: for each deny/allow/approval rule, one input that triggers it and one that
does not, all evaluated by the real OPA in a single `opa eval` per version, in Gavel's sandbox
(core/opa/sandbox.py: no environment, no network builtins, time and memory limits).

The example states what OPA answered ("This request is denied: ...") and whether that
agrees with the summary. When no triggering input can be built, the rule says so.
"""
from __future__ import annotations

import json
import re
import subprocess
import tempfile
from pathlib import Path

from core.opa import cli as opa_cli
from policies.summaries import search
from policies.summaries.inputs import Builder, CannotBuild
from policies.summaries.localeval import Unknown
from policies.summaries.phrasing import field_name, format_value

MAX_ALTERNATIVES = 4
NO_TRIGGER = "Gavel could not build a request that makes this rule apply, so it shows no worked example."


def _template_regex(template: str | None):
    if template is None:
        return None
    pieces = re.split(r"(%[-+# 0-9.]*[a-zA-Z%])", template)
    pattern = "".join(
        "%" if p == "%%" else (".*" if re.fullmatch(r"%[-+# 0-9.]*[a-zA-Z]", p) else re.escape(p)) for p in pieces)
    return re.compile(pattern, re.DOTALL)


def _message_of(item):
    if isinstance(item, dict):
        return next((item[k] for k in ("msg", "message", "reason") if k in item), json.dumps(item))
    return item if isinstance(item, str) else json.dumps(item)


def flatten(doc, path=()) -> list[dict]:
    """The input as rows a reader can scan: the request's user id = “u-107”."""
    if isinstance(doc, dict) and doc:
        return [row for k, v in doc.items() for row in flatten(v, path + (k,))]
    shown = format_value(doc) if not isinstance(doc, (dict, list)) or doc else ("empty" if path else "{}")
    if isinstance(doc, list) and doc:
        shown = ", ".join(format_value(v) if not isinstance(v, (dict, list)) else json.dumps(v) for v in doc)
    return [{"field": field_name(path), "path": ".".join(map(str, path)), "value": shown}]


def run_batch(source: str, filename: str, package: str, names: dict, docs: list, data: dict | None = None) -> list[dict]:
    """Evaluate every doc as input in ONE `opa eval`; per doc, each rule name's values (a list)."""
    base = "data" + "".join(f"[{json.dumps(p)}]" for p in package.split("."))
    lines = []
    for i, doc in enumerate(docs):
        fields = ", ".join(
            f'{json.dumps(name)}: [x | x := {base}[{json.dumps(name)}]{"[_]" if partial else ""}]'
            for name, partial in sorted(names.items()))
        lines.append(f"e{i} := {{{fields}}} with input as {json.dumps(doc)}")
    with tempfile.TemporaryDirectory(prefix="gavel-examples-") as tmp:
        path = Path(tmp) / (Path(filename).name or "policy.rego")
        path.write_text(source, encoding="utf-8")
        extra = []
        if data:
            (Path(tmp) / "data.json").write_text(json.dumps(data), encoding="utf-8")
            extra = ["-d", str(Path(tmp) / "data.json")]
        done = opa_cli.run("eval", "--format", "json", "--stdin", "-d", str(path), *extra, input="\n".join(lines),
                           timeout=120)
    if done.returncode != 0:
        raise RuntimeError((done.stdout or done.stderr).strip()[:2000])
    result = json.loads(done.stdout).get("result") or []
    if not result:
        raise RuntimeError("OPA returned no result for the examples")
    bindings = result[0]["bindings"]
    return [bindings[f"e{i}"] for i in range(len(docs))]


class Plan:
    """The candidate inputs for one rule, before OPA has seen them."""

    def __init__(self, record, rule, trigger, alternatives, expected_message):
        self.record, self.rule = record, rule
        self.trigger, self.alternatives = trigger, alternatives
        self.regex = _template_regex((record.get("message") or {}).get("template"))
        self.expected_message = expected_message
        self.borrowed: list = []  # other rules' triggers: shown only when OPA confirms they stay clear

    def applies(self, observed: dict) -> tuple[bool, list]:
        values = observed.get(self.rule.name, [])
        if self.rule.is_partial_set:
            messages = [_message_of(v) for v in values]
            if self.regex is not None:
                return any(self.regex.fullmatch(m) for m in messages if isinstance(m, str)), messages
            return any(v == self.expected_message for v in values), messages
        return values == [True], values

    def statement(self, observed: dict) -> str:
        values = observed.get(self.rule.name, [])
        effect = self.record["effect"]
        if effect == "deny" and self.rule.is_partial_set:
            messages = [_message_of(v) for v in values]
            return ("This request is denied: " + "; ".join(messages) + ".") if messages else \
                "No deny rule applies to this request."
        if effect == "approval" and self.rule.is_partial_set:
            messages = [_message_of(v) for v in values]
            return ("This request requires approval: " + "; ".join(messages) + ".") if messages else \
                "This request does not require approval."
        on = values == [True]
        return {
            "deny": ("This request is denied." if on else "This request is not denied."),
            "allow": ("This request is allowed." if on else "This request is not allowed."),
            "approval": ("This request requires approval." if on else "This request does not require approval."),
        }[effect]


def plan_for(builder: Builder, record: dict, rule, group_rules: list) -> Plan:
    pins: set = set()
    trigger = builder.fire(rule, {}, pins)
    # Quiet the group's other rules when that is possible, so the example shows this rule alone.
    for other in group_rules:
        if other is rule:
            continue
        try:
            quieter = builder.quiet(other, trigger, set(pins))
        except (CannotBuild, Unknown):
            continue
        if builder.ev(quieter).fires(rule):
            trigger = quieter
    ev = builder.ev(trigger)
    if not ev.fires(rule):
        raise CannotBuild("the built request does not satisfy the rule")
    expected = None
    if rule.is_partial_set:
        env = next(ev.solutions(rule.body))
        expected = ev.term(rule.key, env).value
    trail = builder.first_solution(rule, trigger)
    alternatives = []
    for index in builder.preference(rule):
        try:
            doc, _ = builder.literal(rule.body[index], trail[index], trigger, False, set(), 0)
        except (CannotBuild, Unknown, StopIteration):
            continue
        try:
            still = builder.ev(doc).fires(rule)
        except Unknown:
            continue
        if not still and doc not in alternatives:
            alternatives.append(doc)
        if len(alternatives) >= MAX_ALTERNATIVES:
            break
    return Plan(record, rule, trigger, alternatives, expected)


def _searched(hard: list, source: str, filename: str, package: str, data: dict | None) -> list[Plan]:
    """Plans for the rules the builder could not do, from OPA's partial evaluation (search.py)."""
    if not hard:
        return []
    rules = [rule for _, rule in hard if not rule.unsupported]
    try:
        found = search.find(source, filename, package, rules, data) if rules else []
    except (RuntimeError, OSError, ValueError, subprocess.TimeoutExpired) as exc:
        found = [f"OPA could not evaluate it: {exc}"] * len(rules)
    by_rule = dict(zip(map(id, rules), found))
    plans = []
    for record, rule in hard:
        got = by_rule.get(id(rule), f"Gavel cannot evaluate {rule.unsupported} yet.")
        if isinstance(got, str):
            record["example_note"] = f"{NO_TRIGGER} {got}"
            continue
        trigger, expected, alternatives = got
        plans.append(Plan(record, rule, trigger, alternatives, expected if rule.is_partial_set else None))
    return plans


def _example(plan: Plan, kind: str, doc, observed: dict) -> dict:
    applied, _ = plan.applies(observed)
    agrees = applied if kind == "triggers" else not applied
    if agrees:
        problem = None
    elif kind == "triggers":
        problem = "The summary says this rule applies to this request, but OPA's answer does not show it."
    else:
        problem = "The summary says this rule does not apply to this request, but OPA's answer shows it does."
    return {"kind": kind, "input": doc, "fields": flatten(doc), "opa": observed, "applies": applied,
            "agrees": agrees, "statement": plan.statement(observed), "problem": problem}


def attach(summary: dict, module, source: str, filename: str, rules_by_anchor: dict, data: dict | None = None) -> None:
    """Add `examples` (and `example_note` where none could be built) to every grouped rule."""
    builder = Builder(module)
    plans, hard = [], []
    for group in summary["groups"]:
        group_rules = [rules_by_anchor[r["anchor"]] for r in group["rules"]]
        for record in group["rules"]:
            rule = rules_by_anchor[record["anchor"]]
            try:
                plan = plan_for(builder, record, rule, group_rules)
            except (CannotBuild, Unknown, RecursionError):
                hard.append((record, rule))
                continue
            if plan.alternatives:
                plans.append(plan)
            else:  # no request that stays clear of it: let OPA's partial evaluation find one
                hard.append((record, rule))
    plans += _searched(hard, source, filename, summary["package"], data)
    for plan in plans:  # other rules' triggering requests are candidates too: OPA says whether this one applies
        if len(plan.alternatives) < 2:
            plan.borrowed = [p.trigger for p in plans if p is not plan and p.trigger != plan.trigger
                             and p.trigger not in plan.alternatives][:MAX_ALTERNATIVES]
    names = {p.rule.name: p.rule.is_partial_set for p in plans}
    docs = [doc for p in plans for doc in [p.trigger, *p.alternatives, *p.borrowed]]
    status = {"checked": 0, "agree": 0, "disagree": 0, "without_example": 0, "error": None}
    status["without_example"] = sum(1 for g in summary["groups"] for r in g["rules"] if r["example_note"])
    summary["examples"] = status
    if not docs:
        return
    try:
        observed = run_batch(source, filename, summary["package"], names, docs, data)
    except (RuntimeError, OSError, ValueError, subprocess.TimeoutExpired) as exc:
        status["error"] = f"OPA could not evaluate the examples: {exc}"
        return
    position = 0
    for plan in plans:
        size = 1 + len(plan.alternatives) + len(plan.borrowed)
        results = observed[position: position + size]
        position += size
        examples = [_example(plan, "triggers", plan.trigger, results[0])]
        others = [_example(plan, "does_not_trigger", doc, seen) for doc, seen in zip(plan.alternatives, results[1:])]
        borrowed = [_example(plan, "does_not_trigger", doc, seen)
                    for doc, seen in zip(plan.borrowed, results[1 + len(plan.alternatives):])]
        others += [e for e in borrowed if e["agrees"]]
        if others:
            # Another definition of the same rule may still apply to an alternative; show one OPA confirms.
            # ...and prefer the one where the fewest other rules of the group fire, so it reads cleanly.
            agreeing = [e for e in others if e["agrees"]]
            examples.append(min(agreeing, key=lambda e: len(e["opa"].get(plan.rule.name, [])))
                            if agreeing else others[0])
        else:
            plan.record["example_note"] = "Gavel could not build a request that stays clear of this rule."
        plan.record["examples"] = examples
        for example in examples:
            status["checked"] += 1
            status["agree" if example["agrees"] else "disagree"] += 1
