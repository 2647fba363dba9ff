"""A small evaluator for the Rego the summaries can phrase, used only to *build* example inputs.

It follows Rego's rules for missing fields (an expression over a missing field is
undefined, so a condition on it is false; `not` of it is true) and remembers which
input field every value came from, so the example builder knows what to change. It is
never the judge: every example it helps build is then evaluated by the real OPA.
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass, replace

from policies.summaries.ast import Call, Collection, Const, Expr, Ref, RSet, Rule, RuleRef, Var


class Unknown(Exception):
    """A construct this evaluator does not model; the caller gives up on the example."""


class _Undefined:
    def __repr__(self):
        return "UNDEF"


UNDEF = _Undefined()


@dataclass(frozen=True)
class V:
    value: object
    path: tuple | None = None  # the input field this value was read from
    how: str = ""              # "lower", "upper", "count": how it was derived from that field


def type_rank(v) -> int:
    if v is None:
        return 0
    if isinstance(v, bool):
        return 1
    if isinstance(v, (int, float)):
        return 2
    if isinstance(v, str):
        return 3
    if isinstance(v, RSet):
        return 6
    if isinstance(v, (list, tuple)):
        return 4
    return 5


def rego_equal(a, b) -> bool:
    return type_rank(a) == type_rank(b) and a == b


def rego_compare(a, b) -> int:
    ra, rb = type_rank(a), type_rank(b)
    if ra != rb:
        return (ra > rb) - (ra < rb)
    if ra in (1, 2, 3):
        return (a > b) - (a < b)
    sa, sb = json.dumps(a, sort_keys=True, default=list), json.dumps(b, sort_keys=True, default=list)
    return (sa > sb) - (sa < sb)


def members(coll) -> list:
    if isinstance(coll, dict):
        return list(coll.values())
    if isinstance(coll, (list, tuple)):
        return list(coll)
    return []


def entries(coll, path):
    """(key, V(value)) pairs of a collection, as `some k, v in coll` iterates them."""
    child = lambda k: path + (k,) if path is not None else None  # noqa: E731
    if isinstance(coll, dict):  # a key remembers where it sits, so an example can rename it
        return [(V(k, child(k), "key"), V(v, child(k))) for k, v in coll.items()]
    if isinstance(coll, RSet):
        return [(V(v), V(v)) for v in coll]
    if isinstance(coll, list):
        return [(V(i), V(v, child(i))) for i, v in enumerate(coll)]
    return []


def hoisted_args(x: Expr) -> list:
    """The arguments of a negated expression that OPA evaluates before the `not`."""
    if x.kind != "call" or x.op in ("assign",):
        return []
    keeps_refs = x.op in ("equal", "eq")
    return [a for a in x.args if isinstance(a, Call) or (isinstance(a, Ref) and not keeps_refs)]


def sprintf(fmt: str, args: list) -> str:
    it = iter(args)

    def one(match):
        verb = match.group(0)
        if verb == "%%":
            return "%"
        v = next(it, "")
        if verb.endswith("q"):
            return json.dumps(v)
        return v if isinstance(v, str) else json.dumps(v, default=list)
    return re.sub(r"%[-+# 0-9.]*[a-zA-Z%]", one, fmt)


def _index(container, key):
    if isinstance(container, dict):
        return container.get(key, UNDEF) if isinstance(key, str) else UNDEF
    if isinstance(container, list) and isinstance(key, int) and not isinstance(key, bool):
        return container[key] if 0 <= key < len(container) else UNDEF
    if isinstance(container, RSet):
        return key if key in container else UNDEF
    return UNDEF


TYPE_TESTS = {
    "is_string": lambda v: isinstance(v, str), "is_number": lambda v: type_rank(v) == 2,
    "is_boolean": lambda v: isinstance(v, bool), "is_object": lambda v: isinstance(v, dict),
    "is_array": lambda v: isinstance(v, list), "is_set": lambda v: isinstance(v, RSet), "is_null": lambda v: v is None,
}
COMPARE = {
    "equal": lambda a, b: rego_equal(a, b), "eq": lambda a, b: rego_equal(a, b),
    "neq": lambda a, b: not rego_equal(a, b), "gt": lambda a, b: rego_compare(a, b) > 0,
    "gte": lambda a, b: rego_compare(a, b) >= 0, "lt": lambda a, b: rego_compare(a, b) < 0,
    "lte": lambda a, b: rego_compare(a, b) <= 0,
}


def builtin(op: str, vals: list):
    if op == "object.get":
        obj, key, default = vals
        for k in key if isinstance(key, list) else [key]:
            obj = _index(obj, k)
            if obj is UNDEF:
                return default
        return obj
    if any(v is UNDEF for v in vals):
        return UNDEF
    if op in COMPARE:
        return COMPARE[op](*vals)
    if op in TYPE_TESTS:
        return TYPE_TESTS[op](vals[0])
    if op == "internal.member_2":
        return any(rego_equal(vals[0], m) for m in members(vals[1]))
    if op == "internal.member_3":
        got = _index(vals[2], vals[0])
        return got is not UNDEF and rego_equal(got, vals[1])
    if op == "count":
        return len(vals[0]) if isinstance(vals[0], (str, list, dict, RSet)) else UNDEF
    strings = all(isinstance(v, str) for v in vals)
    if op in ("lower", "upper", "trim_space"):
        return getattr(vals[0], {"lower": "lower", "upper": "upper", "trim_space": "strip"}[op])() if strings else UNDEF
    if op in ("contains", "startswith", "endswith"):
        if not strings:
            return UNDEF
        return {"contains": vals[1] in vals[0], "startswith": vals[0].startswith(vals[1]),
                "endswith": vals[0].endswith(vals[1])}[op]
    if op == "regex.match":
        return re.search(vals[0], vals[1]) is not None if strings else UNDEF
    if op == "sprintf":
        return sprintf(vals[0], list(vals[1])) if isinstance(vals[0], str) else UNDEF
    if op == "sort":
        return sorted(members(vals[0]) if not isinstance(vals[0], RSet) else list(vals[0]),
                      key=lambda v: (type_rank(v), json.dumps(v, sort_keys=True, default=list)))
    if op in ("or", "and") and all(isinstance(v, RSet) for v in vals):
        a, b = vals
        return RSet(sorted(set(a) | set(b), key=str)) if op == "or" else RSet(x for x in a if x in b)
    if op in ("plus", "minus", "mul") and all(type_rank(v) == 2 for v in vals):
        return {"plus": vals[0] + vals[1], "minus": vals[0] - vals[1], "mul": vals[0] * vals[1]}[op]
    raise Unknown(op)


class Evaluator:
    def __init__(self, module, input_value):
        self.input = input_value
        self.rules: dict[str, list[Rule]] = {}
        for rule in module.rules:
            self.rules.setdefault(rule.name, []).append(rule)
        self._memo: dict = {}
        self._busy: set = set()

    # terms
    def term(self, t, env: dict) -> V:
        if isinstance(t, Const):
            return V(t.value)
        if isinstance(t, Var):
            if t.name == "input":
                return V(self.input, ())
            if t.name in env:
                return env[t.name]
            raise Unknown(f"unbound variable {t.name}")
        if isinstance(t, RuleRef):
            return V(self.rule_value(t.name))
        if isinstance(t, Ref):
            base = self.term(t.head, env)
            value, path = base.value, base.path
            for segment in t.path:
                key = self.term(segment, env).value
                value = _index(value, key) if value is not UNDEF else UNDEF
                path = path + (key,) if path is not None and isinstance(key, (str, int)) else None
            return V(value, path)
        if isinstance(t, Call):
            args = [self.term(a, env) for a in t.args]
            result = builtin(t.op, [a.value for a in args])
            if t.op in ("lower", "upper", "trim_space", "count") and args:
                return V(result, args[0].path, t.op)
            if t.op == "object.get" and args[0].path == () and isinstance(args[1].value, (list, str)):
                key = args[1].value
                return V(result, tuple(key) if isinstance(key, list) else (key,))
            return V(result)
        if isinstance(t, Collection):
            if t.kind == "object":
                pairs = [(self.term(k, env).value, self.term(v, env).value) for k, v in t.items]
                if any(k is UNDEF or v is UNDEF for k, v in pairs):
                    return V(UNDEF)
                return V(dict(pairs))
            items = [self.term(i, env).value for i in t.items]
            if any(i is UNDEF for i in items):
                return V(UNDEF)
            return V(items if t.kind == "array" else RSet(items))
        raise Unknown(getattr(t, "kind", "term"))

    # expressions
    def expr(self, x: Expr, env: dict):
        if x.negated:
            # OPA evaluates a negated call's arguments outside the `not` (only `==` keeps plain
            # fields inside), so a missing field there makes the whole rule undefined.
            if any(self.term(a, env).value is UNDEF for a in hoisted_args(x)):
                return
            if next(self.expr(replace(x, negated=False), env), None) is None:
                yield env
            return
        if x.kind == "unsupported":
            raise Unknown(x.why)
        if x.kind == "some_in":
            domain = self.term(x.domain, env)
            key_var, val_var = x.some_vars
            for key, val in entries(domain.value, domain.path):
                bound = dict(env)
                if isinstance(key_var, Var) and not key_var.name.startswith("$"):
                    bound[key_var.name] = key
                if isinstance(val_var, Var) and not val_var.name.startswith("$"):
                    bound[val_var.name] = val
                yield bound
            return
        if x.kind == "term":
            v = self.term(x.term, env).value
            if v is not UNDEF and v is not False:
                yield env
            return
        if x.op in ("assign", "eq") and isinstance(x.args[0], Var) and x.args[0].name not in env:
            v = self.term(x.args[1], env)
            if v.value is not UNDEF:
                yield {**env, x.args[0].name: v}
            return
        result = self.term(Call(x.op, x.args), env).value
        if result is not UNDEF and result is not False:
            yield env

    def solutions(self, body: list, env: dict | None = None):
        env = env or {}
        if not body:
            yield env
            return
        for bound in self.expr(body[0], env):
            yield from self.solutions(body[1:], bound)

    # rules
    def fires(self, rule: Rule) -> bool:
        for env in self.solutions(rule.body):
            head = rule.key if rule.is_partial_set else rule.value
            if head is None or self.term(head, env).value is not UNDEF:
                return True
        return False

    def rule_value(self, name: str):
        if name in self._memo:
            return self._memo[name]
        if name in self._busy:
            raise Unknown("a recursive rule")
        defs = self.rules.get(name)
        if not defs or any(r.unsupported for r in defs):
            raise Unknown(f"rule {name}")
        self._busy.add(name)
        try:
            result = self._rule_value(defs)
        finally:
            self._busy.discard(name)
        self._memo[name] = result
        return result

    def _rule_value(self, defs: list):
        if any(r.is_partial_set for r in defs):
            found = []
            for rule in defs:
                for env in self.solutions(rule.body):
                    v = self.term(rule.key, env).value
                    if v is not UNDEF and not any(rego_equal(v, f) for f in found):
                        found.append(v)
            return RSet(found)
        for rule in (r for r in defs if not r.is_default):
            for env in self.solutions(rule.body):
                v = self.term(rule.value, env).value
                if v is not UNDEF:
                    return v
        default = next((r for r in defs if r.is_default), None)
        return self.term(default.value, {}).value if default else UNDEF

