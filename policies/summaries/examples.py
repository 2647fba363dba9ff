"""Worked examples: for each deny/allow/approval rule, one input that triggers it and one that
does not, all evaluated by the real OPA in a single `opa eval` per version (or for many versions
at once: summarize_many), in Gavel's sandbox
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

from django.conf import settings

from core.opa import cli as opa_cli
from policies.summaries.finder import probes, solver
from policies.summaries.finder.probes import PROBE_KEY
from policies.summaries.ast import Const, Ref, Var
from policies.summaries.inputs import Builder, CannotBuild, placeholder, set_path
from policies.summaries.localeval import Unknown
from policies.summaries.phrasing import field_name, format_value

MAX_ALTERNATIVES = 4
BROKEN_FOR = 8  # candidates from the partial evaluation whose broken variants are evaluated too
NO_TRIGGER = "Gavel could not build a request that makes this rule apply, so it shows no worked example."
NO_DATA = "Gavel was given none for this version"


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


def _merge(into: dict, extra: dict, path=()) -> None:
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(into.get(key), dict):
            _merge(into[key], value, path + (key,))
        elif key in into and into[key] != value:
            raise ValueError(f"the policies' data disagree at {'.'.join(path + (key,))}")
        else:
            into[key] = value


def run_many(pendings: list) -> list[list[dict]]:
    """Every pending policy's requests evaluated in ONE `opa eval` (one file per policy, their data
    merged): per policy, per request, each decision rule's values (a list) and, when it has
    probes, their [rule position, message] pairs (finder/probes.py)."""
    packages = [p.summary["package"] for p in pendings]
    if len(set(packages)) != len(packages):
        raise ValueError("two policies share a package")
    data: dict = {}
    for p in pendings:
        _merge(data, p.data or {})
    # The requests go in as data and one rule per policy evaluates them all, each `with input as`
    # it: far cheaper for OPA to compile than a query with a `with` per request.
    data["gavel_example_requests"] = {f"p{k}": p.docs for k, p in enumerate(pendings)}
    rules = ["package gavel_example_run", ""]
    for k, p in enumerate(pendings):
        base = "data" + "".join(f"[{json.dumps(part)}]" for part in p.summary["package"].split("."))
        wanted = {**p.names, PROBE_KEY: True} if p.probing else p.names
        fields = ", ".join(f'{json.dumps(name)}: [x | x := {base}[{json.dumps(name)}]{"[_]" if partial else ""}]'
                           for name, partial in sorted(wanted.items()))
        rules.append(f"p{k} := [r | some doc in data.gavel_example_requests.p{k}; r := {{{fields}}} with input as doc]")
    with tempfile.TemporaryDirectory(prefix="gavel-examples-") as tmp:
        args = []
        for k, p in enumerate(pendings):
            path = Path(tmp) / f"p{k}-{Path(p.filename).name or 'policy.rego'}"
            path.write_text(p.probed, encoding="utf-8")
            args += ["-d", str(path)]
        (Path(tmp) / "gavel_example_run.rego").write_text("\n".join(rules) + "\n", encoding="utf-8")
        (Path(tmp) / "data.json").write_text(json.dumps(data), encoding="utf-8")
        args += ["-d", str(Path(tmp) / "gavel_example_run.rego"), "-d", str(Path(tmp) / "data.json")]
        done = opa_cli.run("eval", "--format", "json", *args, "data.gavel_example_run",
                           timeout=settings.GAVEL_EXAMPLES_SECONDS * len(pendings))
    if done.returncode != 0:
        raise RuntimeError((done.stdout or done.stderr).strip()[:2000])
    result = json.loads(done.stdout).get("result") or []
    if not result:
        raise RuntimeError("OPA returned no result for the examples")
    value = result[0]["expressions"][0]["value"]
    out = [value.get(f"p{k}") for k in range(len(pendings))]
    if any(r is None or len(r) != len(p.docs) for r, p in zip(out, pendings)):
        raise RuntimeError("OPA did not evaluate every example")
    return out


class Plan:
    """The candidate inputs for one rule, before OPA has seen them."""

    def __init__(self, record, rule, trigger, alternatives, expected_message):
        self.record, self.rule = record, rule
        self.trigger, self.alternatives = trigger, alternatives
        self.regex = _template_regex((record.get("message") or {}).get("template"))
        self.expected_message = expected_message

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


def _with_message_fields(builder: Builder, rule, record: dict, doc):
    """Give the fields the rule's message prints a value, so the example reads "agent agent-1 may
    not call tool-1" rather than a policy's "?" default, when the rule still applies with them."""
    paths = [tuple(p["path"].split(".")) for p in (record.get("message") or {}).get("parts") or []
             if p.get("t") == "field" and p.get("path")]
    for path in paths:
        node = doc
        for key in path:
            node = node.get(key) if isinstance(node, dict) else None
        if node is not None:
            continue
        try:
            filled = set_path(doc, path, placeholder(path))
            if builder.ev(filled).fires(rule):
                doc = filled
        except (CannotBuild, Unknown):
            continue
    return doc


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
    trigger = _with_message_fields(builder, rule, record, trigger)
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


def _example(plan: Plan, kind: str, doc, observed: dict) -> dict:
    applied, _ = plan.applies(observed)
    agrees = applied if kind == "triggers" else not applied
    if agrees:
        problem = None
    elif kind == "triggers":
        problem = "The summary says this rule applies to this request, but OPA's answer does not show it."
    else:
        problem = "The summary says this rule does not apply to this request, but OPA's answer shows it does."
    observed = {k: v for k, v in observed.items() if k != PROBE_KEY}
    return {"kind": kind, "input": doc, "fields": flatten(doc), "opa": observed, "applies": applied,
            "agrees": agrees, "statement": plan.statement(observed), "problem": problem}


def _searched_plans(hard: list, tried: list, observed, notes: dict) -> list[Plan]:
    """Plans for the rules only OPA's partial evaluation could help with: the first candidate that
    both the probe and the real rule say applies triggers it; its broken variants may not."""
    plans = []
    for i, (record, rule) in enumerate(hard):
        chosen = None
        for doc, variants in tried[i]:
            fired = [key for index, key in observed(doc).get(PROBE_KEY, []) if index == i]
            if not fired:
                continue
            plan = Plan(record, rule, doc, variants, fired[0] if rule.is_partial_set else None)
            if plan.applies(observed(doc))[0]:
                chosen = plan
                break
        if chosen is None:
            record["example_note"] = f"{NO_TRIGGER} " + (notes.get(i) or (
                "None of the requests Gavel built from OPA's partial evaluation made this rule apply."))
            continue
        chosen.alternatives += [d for d, _ in tried[i] if d != chosen.trigger][:2]  # values OPA said miss
        plans.append(chosen)
    return plans


def _data_read(rule) -> tuple[str, list]:
    """("acme › scopes", [("acme", "scopes")]) when the rule reads `data.acme.scopes` (data outside
    the policy), else ("", [])."""
    found = []

    def walk(t):
        if isinstance(t, Ref) and t.head == Var("data"):
            names = []
            for p in t.path:
                if not (isinstance(p, Const) and isinstance(p.value, str)):
                    break
                names.append(p.value)
            if names:
                found.append(tuple(names))
        for child in [*getattr(t, "args", ()), *getattr(t, "path", ()), getattr(t, "head", None)]:
            if child is not None and not isinstance(child, (str, int, float, bool)):
                walk(child)
    for e in rule.body:
        for t in (*e.args, e.term, e.domain):
            if t is not None:
                walk(t)
    found = list(dict.fromkeys(found))
    return ", ".join(" › ".join(names) for names in found), found


def _holds(data, path: tuple) -> bool:
    for name in path:
        if not isinstance(data, dict) or name not in data:
            return False
        data = data[name]
    return True


def _without_example(read: tuple, data, data_note: str, data_from: str) -> str:
    """Why a rule OPA finds no request for has none, in words: the data it reads, when that is missing."""
    text, paths = read
    missing = [p for p in paths if not _holds(data, p)]
    if text and (data is None or (not data and not data_from)):
        return f"It reads data kept outside the policy ({text}), and {data_note or NO_DATA}."
    if text and missing:
        where = data_from or "the data Gavel was given"
        return (f"It reads data kept outside the policy ({text}), and {where} holds nothing at "
                + ", ".join("data." + ".".join(p) for p in missing) + ".")
    return "OPA finds no request that makes this rule apply: its conditions cannot all hold at once."


def _probe(hard: list, source: str, filename: str, package: str, data, data_note: str = "",
           data_from: str = "") -> tuple[str, list, dict]:
    """The source with the probes, the candidates per hard rule [(doc, its broken variants)], notes."""
    searchable = [rule for _, rule in hard if not rule.unsupported]
    notes = {i: f"Gavel cannot evaluate {rule.unsupported} yet." for i, (_, rule) in enumerate(hard)
             if rule.unsupported}
    tried: list = [[] for _ in hard]
    if not searchable:
        return source, tried, notes
    positions = [i for i, (_, rule) in enumerate(hard) if not rule.unsupported]
    probed = probes.probe_source(source, [hard[i][1] for i in positions])
    try:
        ways = probes.residuals(probed, filename, package, data)
    except (RuntimeError, OSError, ValueError, subprocess.TimeoutExpired) as exc:
        notes.update({i: f"OPA could not evaluate it: {exc}" for i in positions})
        return source, tried, notes
    for probe_index, i in enumerate(positions):
        if probe_index not in ways:
            notes[i] = _without_example(_data_read(hard[i][1]), data, data_note, data_from)
            continue
        found, why = solver.requests(ways[probe_index])
        tried[i] = [(doc, (solver.breaks(doc, constraints) if n < BROKEN_FOR else []) + also)
                    for doc, n, constraints, also in found]
        if why:
            notes[i] = why
    return probed, tried, notes


class Pending:
    """One policy's worked examples, planned (the builder, then OPA's partial evaluation for the rules
    it cannot do) and waiting for OPA to evaluate every candidate: `evaluate` does that for many
    policies in ONE `opa eval`, then `finish` picks the examples OPA confirmed."""

    def __init__(self, summary: dict, module, source: str, filename: str, rules_by_anchor: dict,
                 data: dict | None = None, data_note: str = "", data_from: str = ""):
        self.summary, self.filename, self.data = summary, filename, data
        builder = Builder(module)
        self.plans, self.hard, self.names = [], [], {}
        for group in summary["groups"]:
            group_rules = [rules_by_anchor[r["anchor"]] for r in group["rules"]]
            for record in group["rules"]:
                rule = rules_by_anchor[record["anchor"]]
                self.names[rule.name] = rule.is_partial_set
                try:
                    plan = plan_for(builder, record, rule, group_rules)
                except (CannotBuild, Unknown, RecursionError):
                    self.hard.append((record, rule))
                    continue
                if plan.alternatives:
                    self.plans.append(plan)
                else:  # no request that stays clear of it: let OPA's partial evaluation find one
                    self.hard.append((record, rule))
        self.status = {"checked": 0, "agree": 0, "disagree": 0, "without_example": 0, "error": None}
        summary["examples"] = self.status
        self.probed, self.tried, self.notes = _probe(self.hard, source, filename, summary["package"], data,
                                                        data_note, data_from)
        self.probing = self.probed != source
        self.docs, self.seen = [], {}
        for doc in [d for p in self.plans for d in [p.trigger, *p.alternatives]] + [
                d for cands in self.tried for doc, variants in cands for d in [doc, *variants]]:
            key = json.dumps(doc, sort_keys=True)
            if key not in self.seen:
                self.seen[key] = len(self.docs)
                self.docs.append(doc)
        self.results: list | None = None

    def observed(self, doc) -> dict:
        return self.results[self.seen[json.dumps(doc, sort_keys=True)]]

    def finish(self) -> None:
        plans, hard, status = list(self.plans), self.hard, self.status
        if self.docs and self.results is None:
            return  # status["error"] says why
        # the probes are numbered by position among the searchable hard rules; index them the same way
        searchable = [i for i, (_, rule) in enumerate(hard) if not rule.unsupported]
        if self.docs:
            plans += _searched_plans([hard[i] for i in searchable], [self.tried[i] for i in searchable],
                                     self.observed, {n: self.notes[i] for n, i in enumerate(searchable)
                                                     if i in self.notes})
        for i, (record, rule) in enumerate(hard):
            if rule.unsupported or (not self.docs and not record["example_note"]):
                record["example_note"] = f"{NO_TRIGGER} " + (self.notes.get(i) or (
                    "None of the requests Gavel built from OPA's partial evaluation made this rule apply."))
        for plan in plans:
            _examples_of(plan, self.docs, self.observed, self.names, status)
        status["without_example"] = sum(1 for g in self.summary["groups"] for r in g["rules"] if r["example_note"])


def evaluate(pendings: list) -> None:
    """OPA's answers for every candidate of every pending policy: ONE `opa eval` for all of them
    (their sources side by side, their data merged), or one per policy when they cannot share
    (two versions of one package, data that disagree) or when one of them fails."""
    todo = [p for p in pendings if p.docs]
    if len(todo) > 1:
        try:
            for p, results in zip(todo, run_many(todo)):
                p.results = results
            return
        except (RuntimeError, OSError, ValueError, subprocess.TimeoutExpired):
            pass  # each on its own below, so one policy's failure is reported as its own
    for p in todo:
        try:
            (p.results,) = run_many([p])
        except (RuntimeError, OSError, ValueError, subprocess.TimeoutExpired) as exc:
            p.status["error"] = f"OPA could not evaluate the examples: {exc}"


def attach(summary: dict, module, source: str, filename: str, rules_by_anchor: dict, data: dict | None = None,
           data_note: str = "", data_from: str = "") -> None:
    """Add `examples` (and `example_note` where none could be built) to every grouped rule.

    Every candidate request (the builder's, and those from OPA's partial evaluation) is evaluated
    in ONE `opa eval`, with the real rules and the probes side by side.
    """
    pending = Pending(summary, module, source, filename, rules_by_anchor, data, data_note, data_from)
    evaluate([pending])
    pending.finish()


def _examples_of(plan: Plan, docs: list, observed, names: dict, status: dict) -> None:
    examples = [_example(plan, "triggers", plan.trigger, observed(plan.trigger))]
    own = [_example(plan, "does_not_trigger", doc, observed(doc)) for doc in plan.alternatives]
    # Any other request OPA evaluated that the rule does not apply to will do as well...
    borrowed = [_example(plan, "does_not_trigger", doc, observed(doc)) for doc in docs
                if doc != plan.trigger and doc not in plan.alternatives]
    agreeing = [(e, 0) for e in own if e["agrees"]] + [(e, 1) for e in borrowed if e["agrees"]]
    if agreeing:
        # ...and the one no other rule of the policy applies to reads best ("No deny rule applies"),
        # not one denied by another rule; then the builder's own, then the smallest.
        def noise(pair):
            e, foreign = pair
            return (len(e["opa"].get(plan.rule.name, [])),
                    sum(len(v) if isinstance(v, list) and names.get(k) else 0 for k, v in e["opa"].items()),
                    foreign, len(json.dumps(e["input"])))
        examples.append(min(agreeing, key=noise)[0])
    elif own:
        examples.append(own[0])
    else:
        plan.record["example_note"] = "Gavel could not build a request that stays clear of this rule."
    plan.record["examples"] = examples
    for example in examples:
        status["checked"] += 1
        status["agree" if example["agrees"] else "disagree"] += 1
