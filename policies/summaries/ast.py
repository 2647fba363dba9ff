"""OPA's own parse of a policy, reduced to the small tree the summaries work with.

The tree comes from `opa parse --format json` (the source as written; the compiled AST
the policy API returns is rewritten and reads worse) and the METADATA annotations from
the same parse. Every node keeps the exact source text OPA located it at,
so anything Gavel cannot phrase can be shown as written.
"""
from __future__ import annotations

import base64
import json
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from core.opa import cli as opa_cli


class ParseFailed(Exception):
    """OPA could not parse or inspect the source (it should have been compiled first)."""


# Terms -----------------------------------------------------------------------------

class RSet(tuple):
    """A Rego set value, kept in a stable order so summaries and examples are repeatable."""


@dataclass(frozen=True)
class Const:
    value: object


@dataclass(frozen=True)
class Var:
    name: str


@dataclass(frozen=True)
class RuleRef:
    """A rule of this policy used as a value (`blocked_users`, `data.pkg.deny`)."""
    name: str


@dataclass(frozen=True)
class Ref:
    head: object  # Var("input"), Var(local), RuleRef or Ref
    path: tuple   # terms: Const segments, or Var for `input.args[name]`

    @property
    def input_path(self) -> tuple | None:
        """('user', 'id') for input.user.id; None when any segment is not a constant."""
        if self.head != Var("input") or not all(isinstance(p, Const) for p in self.path):
            return None
        return tuple(p.value for p in self.path)


@dataclass(frozen=True)
class Call:
    op: str
    args: tuple


@dataclass(frozen=True)
class Collection:
    kind: str     # "array" | "set" | "object"
    items: tuple  # terms, or (key, value) pairs for objects


@dataclass(frozen=True)
class Unsupported:
    kind: str
    inner: tuple = ()  # the terms inside (e.g. of a comprehension), so the fields it reads are known


@dataclass(frozen=True)
class Comprehension(Unsupported):
    """`[x | some x in xs; ...]`: not evaluated locally (OPA does), but phrased."""
    head: object = None   # the term collected (a (key, value) pair for objects)
    body: tuple = field(default=(), compare=False)  # Exprs (unhashable, so left out of ==)


# Expressions and rules -------------------------------------------------------------

@dataclass
class Expr:
    kind: str            # "call" | "term" | "some_in" | "unsupported"
    text: str            # the source text, for snippets
    negated: bool = False
    op: str = ""         # for calls: "equal", "gt", "internal.member_2", "contains", ...
    args: tuple = ()
    term: object = None  # for "term": the term itself
    some_vars: tuple = ()  # for "some_in": the bound key/value vars (key may be None)
    domain: object = None  # for "some_in": what is iterated
    why: str = ""        # for "unsupported": which construct


@dataclass
class Rule:
    name: str
    row: int
    text: str
    body: list
    key: object = None     # `deny contains <key>`
    key_text: str = ""     # the key as written, so the rule can be re-stated for OPA (search.py)
    args: tuple = ()       # a function's parameters: `hour_open(h)`
    value: object = None   # `x := <value>` / `allow if` (true)
    is_default: bool = False
    is_constant: bool = False  # no conditions and a constant value: a list or limit
    unsupported: str = ""      # why the whole rule is beyond phrasing (functions, else)
    annotations: dict = field(default_factory=dict)
    comment: str = ""  # the author's plain comment right above the rule, if any

    @property
    def is_partial_set(self) -> bool:
        return self.key is not None


@dataclass
class Module:
    package: str
    rules: list
    package_annotations: dict
    # The documents outside the policy it reads (`data.acme.scopes[...]` -> ("acme", "scopes")), shortest first.
    data_paths: tuple = ()


# Running OPA -----------------------------------------------------------------------

def _run(args: list[str], source: str, filename: str) -> dict:
    with tempfile.TemporaryDirectory(prefix="gavel-summary-") as tmp:
        path = Path(tmp) / (Path(filename).name or "policy.rego")
        path.write_text(source, encoding="utf-8")
        done = opa_cli.run(*args, str(path), timeout=60)
    if done.returncode != 0:
        raise ParseFailed((done.stdout or done.stderr).strip()[:2000])
    return json.loads(done.stdout)


def parse(source: str, filename: str) -> dict:
    return _run(["parse", "--format", "json", "--json-include", "locations"], source, filename)


# Converting OPA's JSON -------------------------------------------------------------

def _text(node: dict) -> str:
    raw = (node.get("location") or {}).get("text")
    return base64.b64decode(raw).decode("utf-8") if raw else ""


def _ref_name(term: dict) -> str:
    """`internal.member_2` out of a call's operator ref."""
    return ".".join(str(part["value"]) for part in term["value"])


def const_value(term):
    """The Python value of a fully constant term, or raise ValueError."""
    if isinstance(term, Const):
        return term.value
    raise ValueError("not constant")


def convert_term(node: dict):
    kind, value = node.get("type"), node.get("value")
    if kind in ("null", "boolean", "number", "string"):
        return Const(value)
    if kind == "var":
        return Var(value)
    if kind == "ref":
        head = convert_term(value[0])
        path = tuple(convert_term(part) for part in value[1:])
        return Ref(head, path) if path else head
    if kind == "call":
        return Call(_ref_name(value[0]), tuple(convert_term(arg) for arg in value[1:]))
    if kind in ("array", "set"):
        items = tuple(convert_term(item) for item in value)
        if all(isinstance(i, Const) for i in items):
            values = [i.value for i in items]
            return Const(values if kind == "array" else RSet(sorted(values, key=_sort_key)))
        return Collection(kind, items)
    if kind == "object":
        pairs = tuple((convert_term(k), convert_term(v)) for k, v in value)
        if all(isinstance(k, Const) and isinstance(k.value, str) and isinstance(v, Const) for k, v in pairs):
            return Const({k.value: v.value for k, v in pairs})
        return Collection("object", pairs)
    if kind and kind.endswith("comprehension"):
        parts = [value.get("term"), value.get("key"), value.get("value")]
        heads = tuple(convert_term(p) for p in parts if p)
        body = tuple(convert_expr(e) for e in value.get("body", []))
        inner = heads + tuple(t for e in body for t in _terms_of(e))
        return Comprehension(kind, inner, heads[0] if len(heads) == 1 else heads, body)
    return Unsupported(kind or "unknown")


def _sort_key(value):
    order = {type(None): 0, bool: 1, int: 2, float: 2, str: 3}
    return (order.get(type(value), 9), value if type(value) in order else json.dumps(value, sort_keys=True))


def convert_expr(node: dict) -> Expr:
    text = _text(node)
    negated = bool(node.get("negated"))
    terms = node["terms"]
    if node.get("with"):
        plain = convert_expr({k: v for k, v in node.items() if k != "with"})
        return Expr("unsupported", text, negated, args=_terms_of(plain), why="a `with` override")
    if isinstance(terms, list):
        return Expr("call", text, negated, op=_ref_name(terms[0]), args=tuple(convert_term(t) for t in terms[1:]))
    if "symbols" in terms:  # `some x in xs` / `some k, v in xs` / `some x`
        symbols = terms["symbols"]
        if len(symbols) == 1 and symbols[0].get("type") == "call":
            call = convert_term(symbols[0])
            if call.op == "internal.member_2":
                return Expr("some_in", text, negated, some_vars=(None, call.args[0]), domain=call.args[1])
            if call.op == "internal.member_3":
                return Expr("some_in", text, negated, some_vars=(call.args[0], call.args[1]), domain=call.args[2])
        return Expr("unsupported", text, negated, why="a `some` declaration")
    if "domain" in terms:  # keep its terms so the fields it reads are still listed
        inner = [convert_expr(e) for e in terms.get("body", [])]
        args = (convert_term(terms["domain"]),) + tuple(t for e in inner for t in _terms_of(e))
        return Expr("unsupported", text, negated, args=args, why="an `every` loop")
    return Expr("term", text, negated, term=convert_term(terms))


def _terms_of(expr: Expr) -> tuple:
    return tuple(t for t in (*expr.args, expr.term, expr.domain) if t is not None)


def convert_rule(node: dict) -> Rule:
    head = node["head"]
    rule = Rule(
        name=head["name"] if head.get("name") else _ref_name({"value": head["ref"]}),
        row=node["location"]["row"],
        text=_text(node),
        body=[convert_expr(e) for e in node.get("body", []) if not e.get("generated")],
        key=convert_term(head["key"]) if head.get("key") else None,
        key_text=_text(head["key"]) if head.get("key") else "",
        value=convert_term(head["value"]) if head.get("value") else None,
        is_default=bool(node.get("default")),
    )
    if head.get("args"):
        rule.unsupported = "a function"  # phrased (summary.py), but not evaluated locally
        rule.args = tuple(convert_term(a) for a in head["args"])
    elif node.get("else"):
        rule.unsupported = "an `else` chain"
    elif len(head.get("ref", [])) > 1:
        rule.unsupported = "a rule with a nested name"  # `buckets[name] := change`: phrased with its key
        if len(head["ref"]) == 2 and head["ref"][1].get("type") == "var" and rule.value is not None:
            rule.args, rule.key = (convert_term(head["ref"][1]),), None
    rule.is_constant = not rule.body and not rule.is_default and isinstance(rule.value, Const) and rule.key is None
    return rule


def _resolve(term, rule_names: set, package: tuple, local: set):
    """Turn vars that name rules (and data.<this package>.x refs) into RuleRefs."""
    if isinstance(term, Var):
        return RuleRef(term.name) if term.name in rule_names and term.name not in local else term
    if isinstance(term, Ref):
        head, path = _resolve(term.head, rule_names, package, local), term.path
        if head == Var("data"):
            names = tuple(p.value if isinstance(p, Const) else None for p in path)
            if names[: len(package)] == package and len(names) > len(package) and names[len(package)] in rule_names:
                head, path = RuleRef(names[len(package)]), path[len(package) + 1:]
            else:  # data outside this policy (`data.acme.scopes`): read by OPA, phrased by name
                return Ref(head, tuple(_resolve(p, rule_names, package, local) for p in path))
        path = tuple(_resolve(p, rule_names, package, local) for p in path)
        return Ref(head, path) if path else head
    if isinstance(term, Call):
        return Call(term.op, tuple(_resolve(a, rule_names, package, local) for a in term.args))
    if isinstance(term, Comprehension):
        inner_local = local | _comprehension_vars(term)
        fix = lambda t: _resolve(t, rule_names, package, inner_local)  # noqa: E731
        for expr in term.body:
            _resolve_expr(expr, fix)
        head = tuple(map(fix, term.head)) if isinstance(term.head, tuple) else fix(term.head)
        return Comprehension(term.kind, tuple(map(fix, term.inner)), head, term.body)
    if isinstance(term, Collection):
        if term.kind == "object":
            items = tuple((_resolve(k, rule_names, package, local), _resolve(v, rule_names, package, local))
                          for k, v in term.items)
        else:
            items = tuple(_resolve(i, rule_names, package, local) for i in term.items)
        return Collection(term.kind, items)
    return term


def _resolve_expr(expr, fix) -> None:
    expr.args = tuple(fix(a) for a in expr.args)
    expr.term = fix(expr.term) if expr.term is not None else None
    expr.domain = fix(expr.domain) if expr.domain is not None else None


def _comprehension_vars(term) -> set:
    return _local_vars(Rule(name="", row=0, text="", body=list(term.body)))


def _local_vars(rule: Rule) -> set:
    names = {a.name for a in rule.args if isinstance(a, Var)}
    for expr in rule.body:
        if expr.kind == "call" and expr.op in ("assign", "eq") and isinstance(expr.args[0], Var):
            names.add(expr.args[0].name)
        if expr.kind == "some_in":
            names.update(v.name for v in expr.some_vars if isinstance(v, Var))
    return names


def load(source: str, filename: str) -> Module:
    """Parse `source` with OPA and return its rules in source order, annotations attached."""
    parsed = parse(source, filename)
    package = tuple(str(p["value"]) for p in parsed["package"]["path"][1:])
    rules = [convert_rule(node) for node in parsed.get("rules", [])]
    names = {r.name for r in rules}
    for rule in rules:
        local = _local_vars(rule)
        fix = lambda t: _resolve(t, names, package, local)  # noqa: E731
        rule.key = fix(rule.key) if rule.key is not None else None
        rule.value = fix(rule.value) if rule.value is not None else None
        for expr in rule.body:
            _resolve_expr(expr, fix)
    # `opa parse` carries the METADATA annotations too, so one OPA process reads the policy.
    package_annotations = next((_note(a) for a in parsed.get("annotations") or []
                                if a.get("scope") in ("package", "subpackages")), {})
    for rule, node in zip(rules, parsed.get("rules", [])):
        rule.annotations = next((_note(a) for a in node.get("annotations") or []
                                 if a.get("scope") not in ("package", "subpackages")), {})
    _attach_comments(rules, parsed.get("comments") or [])
    return Module(".".join(package), rules, package_annotations, data_paths(parsed, package))


def data_paths(parsed: dict, package: tuple) -> tuple:
    """The `data` documents a parsed policy reads outside its own package, each as the constant
    names its refs start with (`data.acme.scopes[input.x]` -> ("acme", "scopes")); a path another
    one already covers is left out. A bare `data[x]` is not a path: nothing that narrow to read."""
    found: set = set()

    def walk(node):
        if isinstance(node, dict):
            value = node.get("value")
            if node.get("type") == "ref" and isinstance(value, list) and value and isinstance(value[0], dict) \
                    and value[0].get("type") == "var" and value[0].get("value") == "data":
                names = []
                for part in value[1:]:
                    if part.get("type") != "string":
                        break
                    names.append(part["value"])
                shared = min(len(names), len(package))
                if names and tuple(names[:shared]) != tuple(package[:shared]):  # not the policy's own rules
                    found.add(tuple(names))
            for child in node.values():
                walk(child)
        elif isinstance(node, list):
            for child in node:
                walk(child)
    walk(parsed.get("rules") or [])
    walk(parsed.get("imports") or [])
    ordered = sorted(found, key=lambda p: (len(p), p))
    return tuple(p for i, p in enumerate(ordered) if not any(p[:len(q)] == q for q in ordered[:i]))


def _note(annotation: dict) -> dict:
    return {k: v for k, v in annotation.items() if k != "location"}


def _attach_comments(rules: list, comments: list) -> None:
    """The run of `#` lines ending right above a rule (METADATA blocks excluded)."""
    lines = {c["Location"]["row"]: base64.b64decode(c["Text"]).decode("utf-8").strip() for c in comments}
    for rule in rules:
        row, block = rule.row - 1, []
        while row in lines:
            block.insert(0, lines[row])
            row -= 1
        if block and "METADATA" not in block[0]:
            rule.comment = " ".join(block)
