"""A whole policy as a reviewer reads it: defaults, rules grouped by effect, helpers, lists."""
from __future__ import annotations

from policies.summaries.ast import Call, Collection, Const, Module, Ref, RSet, Rule, RuleRef, Unsupported, Var
from policies.summaries.phrasing import (
    CannotPhrase,
    Phrase,
    RuleContext,
    condition,
    effect_of,
    format_value,
    humanize,
    message_phrase,
    message_template,
    noun,
)

GROUPS = [
    ("deny", "Denies when"),
    ("approval", "Requires approval when"),
    ("allow", "Allows when"),
]
VERBS = {"deny": "deny", "approval": "require approval", "allow": "allow"}
VERBS_ONE = {"deny": "denies", "approval": "requires approval", "allow": "allows"}  # "1 rule that allows"
LEADS = {"deny": "Denies", "allow": "Allows", "approval": "Requires approval"}
FALLBACK_NOTE = "Gavel cannot put {why} into words yet; “As written” shows the policy's own text."


def term_inputs(term) -> set:
    """Every input field a term reads, as dotted paths ("user.id")."""
    found = set()

    def walk(t):
        if isinstance(t, Ref):
            path = []
            for p in t.path:
                if not isinstance(p, Const):
                    break
                path.append(str(p.value))
            if t.head == Var("input") and path:
                found.add(".".join(path))
            walk(t.head)
            for p in t.path:
                walk(p)
        elif isinstance(t, Call):
            if t.op == "object.get" and t.args[0] == Var("input") and isinstance(t.args[1], Const):
                path = t.args[1].value if isinstance(t.args[1].value, list) else [t.args[1].value]
                found.add(".".join(map(str, path)))
            for a in t.args:
                walk(a)
        elif isinstance(t, Collection):
            for item in t.items:
                for part in (item if t.kind == "object" else (item,)):
                    walk(part)
        elif isinstance(t, Unsupported):
            for part in t.inner:
                walk(part)

    walk(term)
    return found


def term_constants(term, constants: set) -> set:
    found = set()

    def walk(t):
        if isinstance(t, RuleRef) and t.name in constants:
            found.add(t.name)
        elif isinstance(t, Ref):
            walk(t.head)
            for p in t.path:
                walk(p)
        elif isinstance(t, Call):
            for a in t.args:
                walk(a)
        elif isinstance(t, Collection):
            for item in t.items:
                for part in (item if t.kind == "object" else (item,)):
                    walk(part)

    walk(term)
    return found


def expr_terms(expr) -> list:
    return [t for t in (*expr.args, expr.term, expr.domain) if t is not None]


def _classify(rule: Rule) -> str:
    effect = effect_of(rule.name)
    if effect == "deny" and (rule.is_partial_set or rule.value == Const(True)):
        return "deny"
    if effect in ("allow", "approval") and not rule.is_partial_set and rule.value == Const(True):
        return effect
    if effect == "approval" and rule.is_partial_set:  # require_approval contains "reason" if {...}
        return effect
    if (rule.value == Const(True) and not rule.is_partial_set) or (rule.is_partial_set and rule.body):
        return "helper"
    return "value"


def _condition_record(expr, ctx: RuleContext, constants: set) -> dict | None:
    fields = sorted(set().union(*(term_inputs(t) for t in expr_terms(expr))))
    consts = sorted(set().union(*(term_constants(t, constants) for t in expr_terms(expr))))
    try:
        phrase = condition(expr, ctx)
    except CannotPhrase as exc:
        return {"text": expr.text, "parts": [{"t": "code", "s": expr.text}], "fallback": True, "snippet": expr.text,
                "note": FALLBACK_NOTE.format(why=str(exc).replace("`", "")), "fields": fields, "constants": consts}
    if phrase is None:
        return None
    return {"text": phrase.text, "parts": list(phrase), "fallback": False, "snippet": None, "note": None,
            "fields": fields, "constants": consts}


def _message(rule: Rule, ctx: RuleContext) -> dict | None:
    term = rule.key if rule.is_partial_set else None
    if isinstance(term, Collection) and term.kind == "object":  # deny contains {"msg": ..., ...}
        term = next((v for k, v in term.items if k in (Const("msg"), Const("message"), Const("reason"))), None)
    if term is None:
        return None
    try:
        phrase = message_phrase(term, ctx)
    except CannotPhrase:
        return {"text": rule.text, "parts": [], "template": None, "fallback": True}
    return {"text": phrase.text, "parts": list(phrase), "template": message_template(term, ctx), "fallback": False}


def _severity(rule: Rule) -> str | None:
    custom = rule.annotations.get("custom") or {}
    severity = custom.get("severity")
    if severity is None and isinstance(rule.key, Collection) and rule.key.kind == "object":
        severity = next((v.value for k, v in rule.key.items if k == Const("severity") and isinstance(v, Const)), None)
    return str(severity) if severity is not None else None


def rule_record(rule: Rule, module: Module, anchor: str, constants: set) -> dict:
    ctx = RuleContext(module, rule)
    effect = _classify(rule)
    record = {
        "anchor": anchor, "name": rule.name, "label": ctx.label(rule.name), "effect": effect, "row": rule.row,
        "title": rule.annotations.get("title"), "description": rule.annotations.get("description"),
        "severity": _severity(rule), "comment": rule.comment or None, "message": None, "conditions": [],
        "value": None, "snippet": None, "note": None, "examples": [], "example_note": None,
        "rego": rule.text,  # shown only behind the "As written" toggle
    }
    if rule.args:  # a function: its parameters read as names ("“hour open” holds for ‘h’ when ...")
        record["params"] = [a.name if isinstance(a, Var) else "value" for a in rule.args]
    if rule.unsupported and not rule.args:
        record.update(snippet=rule.text, note=FALLBACK_NOTE.format(why=rule.unsupported.replace("`", "")))
        record.update(fields=sorted(_rule_inputs(rule)), constants=[], phrased=False, sentence=rule.text)
        return record
    record["message"] = _message(rule, ctx)
    conditions = [c for c in (_condition_record(e, ctx, constants) for e in rule.body) if c is not None]
    record["conditions"] = conditions
    if effect == "value" and rule.value is not None:
        try:
            phrase = noun(rule.value, ctx)
            record["value"] = {"text": phrase.text, "parts": list(phrase)}
        except CannotPhrase as exc:
            record.update(snippet=rule.text, note=FALLBACK_NOTE.format(why=str(exc).replace("`", "")))
    fields = set(_rule_inputs(rule))
    consts = set(term_constants(rule.key, constants)) if rule.key is not None else set()
    for c in conditions:
        consts.update(c["constants"])
    if rule.value is not None:
        consts.update(term_constants(rule.value, constants))
    record["fields"], record["constants"] = sorted(fields), sorted(consts)
    record["phrased"] = not any(c["fallback"] for c in conditions) and not record["snippet"] and not (
        record["message"] or {}).get("fallback")
    record["sentence"] = _sentence(record)
    return record


def _rule_inputs(rule: Rule) -> set:
    terms = [t for e in rule.body for t in expr_terms(e)] + [t for t in (rule.key, rule.value) if t is not None]
    return set().union(set(), *(term_inputs(t) for t in terms))


def _sentence(record: dict) -> str:
    parts = [("[as written: " + c["snippet"] + "]") if c["fallback"] else c["text"] for c in record["conditions"]]
    params = " and ".join(f"‘{p}’" for p in record.get("params") or [])
    lead = LEADS.get(record["effect"], f"“{record['label']}” holds" + (f" for {params}" if params else ""))
    if record["effect"] == "value":
        return f"{record['label']}" + (f" for {params}" if params else "") + " is " + (
            (record["value"] or {}).get("text") or "computed as written")
    return f"{lead} when " + (" and ".join(parts) if parts else "always")


def default_statement(rule: Rule, label: str) -> str:
    value = rule.value.value if isinstance(rule.value, Const) else None
    effect = effect_of(rule.name)
    if effect == "allow" and value is False:
        return "Anything not explicitly allowed is denied."
    if effect == "allow" and value is True:
        return "Everything is allowed unless a rule below says otherwise."
    if effect == "approval" and value is False:
        return "No approval is needed unless a rule below requires it."
    return f"“{label}” is {format_value(value)} unless a rule below decides otherwise."


def constant_record(rule: Rule) -> dict:
    value = rule.value.value
    record = {"name": rule.name, "label": humanize(rule.name), "anchor": f"list-{rule.name}", "row": rule.row,
              "comment": rule.comment or rule.annotations.get("description") or None, "kind": "value",
              "values": [], "entries": [], "text": ""}
    if isinstance(value, (list, RSet)):
        record.update(kind="list", values=[format_value(v) for v in value])
    elif isinstance(value, dict):
        entries = [{"key": str(k), "values": [format_value(x) for x in v] if isinstance(v, (list, RSet))
                    else [format_value(v)]} for k, v in sorted(value.items())]
        record.update(kind="map", entries=entries)
    else:
        record.update(kind="pattern" if isinstance(value, str) and any(c in value for c in "^$[]\\") else "value")
    record["text"] = format_value(value) if not isinstance(value, dict) else "; ".join(
        f"{e['key']}: {', '.join(e['values'])}" for e in record["entries"])
    return record


def build(module: Module, index: dict | None = None) -> dict:
    """The JSON summary of a parsed module (worked examples are added by examples.py).

    `index`, when given, is filled with anchor -> Rule for the rules summarised.
    """
    index = {} if index is None else index
    constants = {r.name for r in module.rules if r.is_constant
                 and sum(1 for o in module.rules if o.name == r.name) == 1}
    seen: dict = {}
    summary = {
        "package": module.package,
        "title": module.package_annotations.get("title"),
        "description": module.package_annotations.get("description"),
        "defaults": [], "groups": [], "helpers": [], "values": [], "constants": [],
    }
    grouped = {effect: [] for effect, _ in GROUPS}
    for rule in module.rules:
        label = RuleContext(module, rule).label(rule.name)
        if rule.is_default:
            summary["defaults"].append({"name": rule.name, "value": format_value(getattr(rule.value, "value", None)),
                                        "text": default_statement(rule, label)})
            continue
        if rule.name in constants:
            summary["constants"].append(constant_record(rule))
            continue
        seen[rule.name] = seen.get(rule.name, 0) + 1
        effect = _classify(rule)
        n = seen[rule.name]
        anchor = f"{rule.name}-{n}" if effect in grouped else (f"rule-{rule.name}" + (f"-{n}" if n > 1 else ""))
        record = rule_record(rule, module, anchor, constants)
        index[anchor] = rule
        if effect in grouped:
            grouped[effect].append(record)
        else:
            summary["helpers" if effect == "helper" else "values"].append(record)
    for effect, heading in GROUPS:
        if grouped[effect]:
            summary["groups"].append({"effect": effect, "heading": heading, "anchor": f"group-{effect}", "verb": VERBS[effect],
                                      "verb_one": VERBS_ONE[effect],
                                      "rules": grouped[effect]})
    summary["rules_total"] = sum(len(g["rules"]) for g in summary["groups"]) + len(summary["helpers"]) + len(
        summary["values"])
    summary["unphrased"] = sum(1 for r in all_rules(summary) if not r.get("phrased", True))
    return summary


def all_rules(summary: dict) -> list:
    return [r for g in summary["groups"] for r in g["rules"]] + summary["helpers"] + summary["values"]
