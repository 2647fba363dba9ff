"""Building request inputs that make a rule fire, or not, one condition at a time.

Each step asks the local evaluator which condition of the rule fails first and changes
the one input field that condition reads. Helpers are satisfied recursively; "no deny
rule applies" quiets each firing deny rule without touching fields already chosen. The
result is only a candidate: OPA decides what it really does (examples.py).
"""
from __future__ import annotations

import copy
import re
from dataclasses import replace

try:  # the regular-expression parser Python itself uses, to write a string a pattern matches
    import re._parser as sre_parse
    from re import _constants as sre_c
except ImportError:  # pragma: no cover - older Pythons
    import sre_constants as sre_c
    import sre_parse

from policies.summaries.ast import Call, Const, Ref, RSet, RuleRef, Var
from policies.summaries.localeval import UNDEF, Evaluator, Unknown, members, rego_equal, type_rank
from policies.summaries.phrasing import effect_of

MAX_STEPS = 40
MAX_DEPTH = 6


class CannotBuild(Exception):
    pass


# Input documents -------------------------------------------------------------------

def set_path(doc, path: tuple, value):
    if not path:
        return copy.deepcopy(value)
    doc = copy.deepcopy(doc) if isinstance(doc, (dict, list)) else {}
    node = doc
    for i, key in enumerate(path):
        last = i == len(path) - 1
        if isinstance(key, int) and isinstance(node, list):
            while len(node) <= key:
                node.append(None)
            if last:
                node[key] = copy.deepcopy(value)
            else:
                if not isinstance(node[key], (dict, list)):
                    node[key] = [] if isinstance(path[i + 1], int) else {}
                node = node[key]
        elif isinstance(node, dict):
            if last:
                node[key] = copy.deepcopy(value)
            else:
                if not isinstance(node.get(key), (dict, list)):
                    node[key] = [] if isinstance(path[i + 1], int) else {}
                node = node[key]
        else:
            raise CannotBuild("a field inside a value that is not an object")
    return doc


def delete_path(doc, path: tuple):
    doc = copy.deepcopy(doc)
    node = doc
    for key in path[:-1]:
        node = node.get(key) if isinstance(node, dict) else None
    if isinstance(node, dict):
        node.pop(path[-1], None)
    return doc


def assign(doc, target, value):
    """Give the field `target` (a localeval.V) the value; a `some k, v` key is renamed instead."""
    if target.how == "key":
        parent = target.path[:-1]
        node = doc
        for key in parent:
            node = node[key]
        renamed = {(value if k == target.path[-1] else k): v for k, v in node.items()}
        return set_path(doc, parent, renamed) if parent else renamed
    return set_path(doc, target.path, value)


def placeholder(path: tuple) -> str:
    last = next((p for p in reversed(path) if isinstance(p, str)), "value")
    return f"{last}-1"


def overlaps(a: tuple, b: tuple) -> bool:
    n = min(len(a), len(b))
    return a[:n] == b[:n]


def sample_for(pattern: str) -> str | None:
    """A short string `pattern` matches (anchors honoured), or None."""
    def gen(items) -> str:
        out = []
        for op, arg in items:
            if op == sre_c.LITERAL:
                out.append(chr(arg))
            elif op == sre_c.ANY:
                out.append("x")
            elif op == sre_c.IN:
                out.append(_class_char(arg))
            elif op in (sre_c.MAX_REPEAT, sre_c.MIN_REPEAT):
                low, _high, sub = arg
                out.append(gen(sub) * low)
            elif op == sre_c.SUBPATTERN:
                out.append(gen(arg[-1]))
            elif op == sre_c.BRANCH:
                out.append(gen(arg[1][0]))
            elif op == sre_c.AT:
                continue
            elif op == sre_c.CATEGORY:
                out.append(_category_char(arg))
            else:
                raise CannotBuild("pattern")
        return "".join(out)
    try:
        candidate = gen(sre_parse.parse(pattern))
    except (CannotBuild, re.error, TypeError, ValueError):
        return None
    return candidate if re.search(pattern, candidate) else None


def _category_char(cat) -> str:
    return {sre_c.CATEGORY_DIGIT: "1", sre_c.CATEGORY_SPACE: " "}.get(cat, "a")


def _class_char(items) -> str:
    negate = any(op == sre_c.NEGATE for op, _ in items)
    if negate:
        return "~"
    for op, arg in items:
        if op == sre_c.LITERAL:
            return chr(arg)
        if op == sre_c.RANGE:
            return chr(arg[0])
        if op == sre_c.CATEGORY:
            return _category_char(arg)
    return "a"


# Solving one condition -------------------------------------------------------------

MIRROR = {"gt": "lt", "lt": "gt", "gte": "lte", "lte": "gte", "equal": "equal", "eq": "eq", "neq": "neq"}


def different(value):
    if isinstance(value, bool):
        return not value
    if type_rank(value) == 2:
        return value + 1
    if isinstance(value, str):
        return "other" if value != "other" else "another"
    return "other"


def solve(op: str, other, truth: bool):
    """A value x with `x op other` equal to `truth`."""
    if op in ("equal", "eq"):
        return other if truth else different(other)
    if op == "neq":
        return different(other) if truth else other
    if type_rank(other) == 2:
        step = 1
        want = {("gt", True): other + step, ("gt", False): other, ("gte", True): other, ("gte", False): other - step,
                ("lt", True): other - step, ("lt", False): other, ("lte", True): other, ("lte", False): other + step}
        return want[(op, truth)]
    if isinstance(other, str):
        bigger, smaller = other + "z", ""
        return {("gt", True): bigger, ("gt", False): other, ("gte", True): other, ("gte", False): smaller,
                ("lt", True): smaller, ("lt", False): other, ("lte", True): other, ("lte", False): bigger}[(op, truth)]
    raise CannotBuild("a comparison with a value that is not a number or text")


TYPE_SAMPLES = {"is_string": "text", "is_number": 1, "is_boolean": True, "is_object": {}, "is_array": [],
                "is_null": None}


class Builder:
    def __init__(self, module):
        self.module = module
        self.defs: dict = {}
        for rule in module.rules:
            if not rule.is_default:
                self.defs.setdefault(rule.name, []).append(rule)

    def ev(self, doc) -> Evaluator:
        return Evaluator(self.module, doc)

    # whole rules
    def fire(self, rule, doc, pins: set, depth: int = 0):
        if depth > MAX_DEPTH:
            raise CannotBuild("helpers nest too deeply")
        for _ in range(MAX_STEPS):
            failing = self.first_failure(rule, doc)
            if failing is None:
                return doc
            index, env = failing
            doc, touched = self.literal(rule.body[index], env, doc, True, pins, depth)
            pins.update(touched)
        raise CannotBuild("the conditions kept undoing each other")

    def quiet(self, rule, doc, pins: set, depth: int = 0):
        """Change `doc` so this definition no longer fires, leaving `pins` alone."""
        if depth > MAX_DEPTH:
            raise CannotBuild("helpers nest too deeply")
        for _ in range(MAX_STEPS):
            trail = self.first_solution(rule, doc)
            if trail is None:
                return doc
            choice = self._quieting_step(rule, trail, doc, pins, depth)
            if choice is None:
                raise CannotBuild(f"could not keep {rule.name} from applying")
            doc, touched = choice
            pins.update(touched)
        raise CannotBuild("the conditions kept undoing each other")

    def _quieting_step(self, rule, trail, doc, pins, depth):
        """One condition to break; replacing the whole request (`()`) only as a last resort."""
        last_resort = None
        for index in self.preference(rule):
            try:
                new, touched = self.literal(rule.body[index], trail[index], doc, False, set(pins), depth + 1)
            except (CannotBuild, Unknown):
                continue
            if new == doc or any(overlaps(t, p) for t in touched for p in pins):
                continue
            if () in touched:
                last_resort = last_resort or (new, touched)
                continue
            return new, touched
        return last_resort

    def preference(self, rule) -> list:
        """Conditions on request fields first: changing them reads most naturally."""
        def rank(i):
            e = rule.body[i]
            terms = [*e.args, e.term, e.domain]
            if any(isinstance(t, RuleRef) or (isinstance(t, Call) and any(isinstance(a, RuleRef) for a in t.args))
                   for t in terms):
                return 2 if any(isinstance(t, Call) and t.op == "count" for t in terms) else 1
            return 0
        return sorted(range(len(rule.body)), key=rank)

    def first_failure(self, rule, doc):
        ev = self.ev(doc)
        if ev.fires(rule):
            return None
        for i in range(len(rule.body)):
            env = next(ev.solutions(rule.body[:i]), None)
            if next(ev.solutions(rule.body[: i + 1]), None) is None:
                return i, env
        raise CannotBuild("the rule's head cannot be computed")

    def first_solution(self, rule, doc):
        """The variable bindings before each condition, along the first way the rule fires."""
        ev = self.ev(doc)

        def walk(i, env):
            if i == len(rule.body):
                return [env]
            for bound in ev.expr(rule.body[i], env):
                rest = walk(i + 1, bound)
                if rest is not None:
                    return [env] + rest
            return None
        return walk(0, {}) if ev.fires(rule) else None

    # one condition
    def literal(self, expr, env, doc, want: bool, pins: set, depth: int):
        truth = want != expr.negated
        positive = replace(expr, negated=False)
        ev = self.ev(doc)
        if expr.kind == "term":
            return self._truthy(positive.term, env, doc, truth, pins, depth, ev)
        if expr.kind == "some_in":
            domain = ev.term(expr.domain, env)
            if domain.path is None:
                raise CannotBuild("iteration over a list the policy defines")
            keyed = expr.some_vars[0] is not None
            if truth:
                return set_path(doc, domain.path, {"key-1": "example"} if keyed else ["example"]), {domain.path}
            return set_path(doc, domain.path, {} if keyed else []), {domain.path}
        if expr.kind != "call":
            raise CannotBuild(expr.why or expr.kind)
        op, args = expr.op, expr.args
        if op in ("assign", "eq") and isinstance(args[0], Var) and args[0].name not in env:
            if not truth:
                raise CannotBuild("an assignment cannot be made false")
            return self._define(args[1], env, doc, ev)
        if op in MIRROR:
            group = self._count_of_group(op, args)
            if group is not None:
                return self._group(group, truth == (op == "equal"), doc, pins, depth)
            return self._compare(op, args, env, doc, truth, ev)
        if op == "internal.member_2":
            return self._member(args, env, doc, truth, ev)
        if op in ("contains", "startswith", "endswith", "regex.match"):
            return self._text(op, args, env, doc, truth, ev)
        if op in TYPE_SAMPLES:
            target = ev.term(args[0], env)
            if target.path is None:
                raise CannotBuild("a type test on a computed value")
            sample = TYPE_SAMPLES[op] if truth else ("text" if op != "is_string" else 1)
            return set_path(doc, target.path, sample), {target.path}
        raise CannotBuild(f"the function {op}")

    def _truthy(self, term, env, doc, truth, pins, depth, ev):
        if isinstance(term, RuleRef) and term.name in self.defs:
            if truth:
                for rule in self.defs[term.name]:
                    try:
                        trial = set(pins)
                        new = self.fire(rule, doc, trial, depth + 1)
                        return new, trial - pins
                    except (CannotBuild, Unknown):
                        continue
                raise CannotBuild(f"could not satisfy {term.name}")
            trial = set(pins)
            for rule in self.defs[term.name]:
                doc = self.quiet(rule, doc, trial, depth + 1)
            return doc, trial - pins
        target = ev.term(term, env)
        if target.path is None:
            raise CannotBuild("a computed value used as a condition")
        return (set_path(doc, target.path, True) if truth else delete_path(doc, target.path)), {target.path}

    def _count_of_group(self, op, args):
        left, right = args
        if (isinstance(left, Call) and left.op == "count" and isinstance(left.args[0], RuleRef)
                and effect_of(left.args[0].name) and right == Const(0) and op in ("equal", "neq", "gt")):
            return left.args[0].name
        return None

    def _group(self, name, none_apply: bool, doc, pins, depth):
        trial = set(pins)
        if none_apply:
            for _ in range(MAX_STEPS):  # quieting one rule can wake another; go round until none applies
                firing = [r for r in self.defs.get(name, []) if self.ev(doc).fires(r)]
                if not firing:
                    return doc, trial - pins
                doc = self.quiet(firing[0], doc, trial, depth + 1)
            raise CannotBuild(f"could not keep every {name} rule from applying")
        for rule in self.defs.get(name, []):
            try:
                return self.fire(rule, doc, trial, depth + 1), trial - pins
            except (CannotBuild, Unknown):
                trial = set(pins)
        raise CannotBuild(f"could not make any {name} rule apply")

    def _define(self, term, env, doc, ev):
        """Give every missing field a term reads a placeholder, so the value exists."""
        touched = set()
        for ref in _refs(term):
            v = ev.term(ref, env)
            if v.value is UNDEF and v.path:
                doc = set_path(doc, v.path, placeholder(v.path))
                touched.add(v.path)
        if not touched:
            raise CannotBuild("a value that cannot be computed")
        return doc, touched

    def _compare(self, op, args, env, doc, truth, ev):
        left, right = (ev.term(a, env) for a in args)
        side, other, op_ = (left, right, op) if left.path is not None and (
            right.path is None or left.value is UNDEF) else (right, left, MIRROR[op])
        if side.path is None:
            raise CannotBuild("a comparison between computed values")
        touched = set()
        if other.value is UNDEF:
            if other.path is None:
                raise CannotBuild("a comparison with a value that cannot be computed")
            filler = placeholder(other.path) if op in ("equal", "eq", "neq") else 10
            doc = set_path(doc, other.path, filler)
            touched.add(other.path)
            other = replace(other, value=filler)
        target = solve(op_, other.value, truth)
        if side.how == "count":
            if type_rank(target) != 2 or target < 0:
                raise CannotBuild("a negative count")
            target = [f"item-{i + 1}" for i in range(int(target))]
        elif side.how in ("lower", "upper") and isinstance(target, str):
            target = target.lower() if side.how == "lower" else target.upper()
        touched.add(side.path)
        return assign(doc, side, target), touched

    def _member(self, args, env, doc, truth, ev):
        item, coll = (ev.term(a, env) for a in args)
        if coll.value is UNDEF:
            ref = args[1]
            if isinstance(ref, Ref) and isinstance(ref.head, RuleRef) and len(ref.path) == 1:
                table = ev.rule_value(ref.head.name)
                index = ev.term(ref.path[0], env)
                if isinstance(table, dict) and table and index.path is not None:
                    return set_path(doc, index.path, sorted(table)[0]), {index.path}
            if coll.path is not None and truth and item.value is not UNDEF:
                return set_path(doc, coll.path, [item.value]), {coll.path}
            raise CannotBuild("membership in a list that cannot be computed")
        pool = members(coll.value)
        if item.path is not None:
            if truth:
                if not pool:
                    raise CannotBuild("membership in an empty list")
                return assign(doc, item, pool[0]), {item.path}
            candidate = next(c for c in (f"not-listed-{i}" for i in range(100))
                             if not any(rego_equal(c, m) for m in pool))
            return assign(doc, item, candidate), {item.path}
        if coll.path is not None and item.value is not UNDEF:
            kept = [m for m in pool if not rego_equal(m, item.value)]
            return set_path(doc, coll.path, kept + [item.value] if truth else kept), {coll.path}
        raise CannotBuild("membership of a computed value")

    def _text(self, op, args, env, doc, truth, ev):
        if op == "regex.match":
            pattern, subject = (ev.term(a, env) for a in args)
            if not isinstance(pattern.value, str) or subject.path is None:
                raise CannotBuild("a pattern Gavel cannot read")
            value = sample_for(pattern.value) if truth else next(
                (c for c in ("", "-", "no match here", "0") if not re.search(pattern.value, c)), None)
        else:
            subject, needle = (ev.term(a, env) for a in args)
            if subject.path is None or not isinstance(needle.value, str):
                raise CannotBuild("a text test on a computed value")
            n = needle.value
            value = {"contains": f"example {n}", "startswith": f"{n}-example", "endswith": f"example-{n}"}[op] \
                if truth else next(c for c in ("example", "zz", "") if n not in c or not n)
            if subject.how == "upper":
                value = value.upper()
        if value is None:
            raise CannotBuild("no text matches that pattern")
        return assign(doc, subject, value), {subject.path}


def _refs(term):
    if isinstance(term, Ref):
        yield term
    for child in getattr(term, "args", ()) or ():
        yield from _refs(child)
    for child in getattr(term, "items", ()) or ():
        for part in (child if isinstance(child, tuple) else (child,)):
            yield from _refs(part)
    if isinstance(term, Ref):
        for p in term.path:
            yield from _refs(p)


__all__ = ["Builder", "CannotBuild", "set_path", "sample_for", "RSet"]
