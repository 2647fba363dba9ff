"""Requests from what OPA's partial evaluation leaves of a rule (probes.py): the simple conditions
(comparisons, membership, text tests, patterns, counts) are solved directly; the rest (time
functions, arithmetic between fields, a policy's own functions) by trying values for the fields
they read, at most CANDIDATES per way the rule applies. Nothing here is trusted: OPA evaluates
every candidate with the real policy (examples.py).
"""
from __future__ import annotations

import itertools
import re

from policies.summaries.ast import Call, Collection, Comprehension, Const, Ref, RSet, Unsupported, Var
from policies.summaries.finder import smt
from policies.summaries.inputs import (
    CannotBuild,
    delete_path,
    different,
    overlaps,
    placeholder,
    sample_for,
    set_path,
    solve,
)

CANDIDATES = 40      # requests tried per way a rule applies
QUERIES = 4          # ways a rule can apply, tried per rule
COMPARE = {"equal", "eq", "neq", "gt", "gte", "lt", "lte"}
MIRROR = {"gt": "lt", "lt": "gt", "gte": "lte", "lte": "gte", "equal": "equal", "eq": "eq", "neq": "neq"}
TEXT = {"startswith", "endswith", "contains"}
TYPES = {"is_string": "text", "is_number": 1, "is_boolean": True, "is_object": {}, "is_array": [], "is_null": None}
# Moments for fields read as times: every day of one week (Monday 5 January 2026 first) at
# night, in office hours and in the evening, and a few far apart for comparisons between fields.
WEEK = [f"2026-01-{day:02d}T{hour:02d}:00:00Z" for day in range(5, 12) for hour in (3, 10, 14, 21)]
FAR = ["2020-01-01T00:00:00Z", "2025-12-01T12:00:00Z", "2026-01-06T10:00:00Z", "2026-01-06T11:00:00Z",
       "2036-01-01T00:00:00Z"]
TIME_FUNCTIONS = re.compile(r"^time\.")


class Unsolvable(Exception):
    """A condition OPA left that Gavel has no way to satisfy."""


class Solver:
    """The simple conditions of one residual query set on a request; the rest left to search."""

    def __init__(self, exprs: list):
        self.exprs = exprs
        self.alias: dict = {}      # local var -> the input path it stands for
        self.computed: set = set()  # local vars OPA left as the result of a function
        self.sources: dict = {}     # computed var -> the fields it is computed from
        self.values: dict = {}      # local var -> the constant OPA bound it to
        self.elements: dict = {}    # var holding a comprehension -> the field each item is
        self.definitions: dict = {}  # computed var -> the term OPA computes it from
        for _ in range(3):  # aliases can build on each other, in any order
            for e in exprs:
                if e.kind == "call" and e.op in ("eq", "equal", "assign") and not e.negated:
                    self._learn(*e.args)
        for name in self.values:  # a constant, not a field
            self.alias.pop(name, None)
        for e in exprs:
            if e.kind == "call" and e.op in ("eq", "equal", "assign") and not e.negated:
                a, b = e.args
                for var, other in ((a, b), (b, a)):
                    if _local(var) and var.name not in self.alias and var.name not in self.values and \
                            var.name not in self.elements:
                        self.computed.add(var.name)
                        self.sources.setdefault(var.name, set()).update(self.reads(other))
                        self.definitions.setdefault(var.name, other)
            for var in _vars_in_pattern(e):
                self.computed.add(var)

    def _learn(self, a, b) -> None:
        for var, other in ((a, b), (b, a)):
            if not _local(var):
                continue
            if isinstance(other, Const):
                self.values[var.name] = other.value
            elif isinstance(other, Var) and other.name in self.values:
                self.values[var.name] = self.values[other.name]
            elif isinstance(other, Comprehension) and other.kind == "arraycomprehension" and \
                    self.path(other.head) is not None:
                self.elements[var.name] = self.path(other.head)
            elif self.path(other) is not None:
                self.alias[var.name] = self.path(other)

    def const(self, term):
        if isinstance(term, Var) and term.name in self.values:
            return Const(self.values[term.name])
        return term

    def path(self, term) -> tuple | None:
        if isinstance(term, Var) and term.name in self.alias:
            return self.alias[term.name]
        if isinstance(term, Ref) and isinstance(term.head, Var) and term.head.name in self.elements and term.path:
            rest = self.path(Ref(Var("input"), term.path[1:])) if len(term.path) > 1 else ()
            return self.elements[term.head.name] + rest
        if isinstance(term, Ref) and (term.head == Var("input") or (
                isinstance(term.head, Var) and term.head.name in self.alias)):
            base = () if term.head == Var("input") else self.alias[term.head.name]
            parts = []
            for p in term.path:
                if isinstance(p, Const) and isinstance(p.value, (str, int)):
                    parts.append(p.value)
                elif isinstance(p, Var) and p.name not in self.alias:
                    parts.append(0)  # the first item of what the rule iterates over
                else:
                    return None
            return base + tuple(parts)
        if term == Var("input"):
            return ()
        return None

    def reads(self, term) -> set:
        found = set()
        p = self.path(term)
        if p is not None:
            found.add(p)
        for child in _children(term):
            found |= self.reads(child)
        return found

    def shown(self, term) -> set:
        """The fields a message prints; object.get's object is left alone (its default is shown)."""
        if isinstance(term, Call) and term.op == "object.get" and len(term.args) == 3:
            base, key = self.path(term.args[0]), term.args[1]
            found = set(self.shown(term.args[2]))  # the default is evaluated (so must exist) either way
            if base is not None and isinstance(key, Const) and isinstance(key.value, (str, list)):
                found.add(base + (tuple(key.value) if isinstance(key.value, list) else (key.value,)))
            return found
        p = self.path(term)
        if p is not None:
            return {p}
        return set().union(set(), *(self.shown(c) for c in _children(term)))

    def objects(self) -> set:
        found = set()
        for e in self.exprs:
            for t in _walk_expr(e):
                if isinstance(t, Call) and t.op == "object.get" and t.args and self.path(t.args[0]):
                    found.add(self.path(t.args[0]))
        return found

    def uses_computed(self, e) -> bool:
        return any(isinstance(t, Var) and t.name in self.computed for t in _walk_expr(e))

    def constraint(self, e):
        """(path, how, value, truth) for a condition Gavel solves directly, else None."""
        if e.kind == "term":
            p = self.path(e.term)
            return (p, "truthy", True, not e.negated) if p is not None else None
        if e.kind != "call" or self.uses_computed(e):
            return None
        truth = not e.negated
        args = tuple(self.const(a) for a in e.args)
        if e.op in COMPARE and len(args) == 2:
            (pa, pb), (ca, cb) = (self.path(a) for a in args), args
            if e.op in ("eq", "equal", "assign") and not e.negated and any(
                    isinstance(a, Var) and a.name.startswith("__local") for a in args) and not any(
                    isinstance(a, Const) for a in args):
                return None  # an alias or a computed value, not a condition
            counted = [a.args[0] if isinstance(a, Call) and a.op == "count" and a.args else None for a in args]
            for i, c in enumerate(counted):  # count([a | some a in input.xs; ...]) > 5: copies of one item
                if isinstance(c, Var) and c.name in self.elements and isinstance(args[1 - i], Const) and \
                        self.elements[c.name][-1:] == (0,):
                    op = e.op if i == 0 else MIRROR[e.op]
                    return self.elements[c.name][:-1], "copies", (op, args[1 - i].value), truth
            if counted[0] is not None and self.path(counted[0]) is not None and isinstance(cb, Const):
                return self.path(counted[0]), "count", (e.op, cb.value), truth
            if counted[1] is not None and self.path(counted[1]) is not None and isinstance(ca, Const):
                return self.path(counted[1]), "count", (MIRROR[e.op], ca.value), truth
            if pa is not None and isinstance(cb, Const):
                return pa, e.op, cb.value, truth
            if pb is not None and isinstance(ca, Const):
                return pb, MIRROR[e.op], ca.value, truth
            if pa is not None and pb is not None and e.op in ("eq", "equal", "neq"):
                return pa, "same" if e.op != "neq" else "differ", pb, truth
            return None
        if e.op == "internal.member_2":
            item, coll = args
            pi, pc = self.path(item), self.path(coll)
            if pi is not None and isinstance(coll, Const):
                return pi, "in", _members(coll.value), truth
            if pc is not None and isinstance(item, Const):
                return pc, "has", item.value, truth
            if pi is not None and pc is not None:
                return pc, "has_path", pi, truth
            return None
        if e.op in TEXT and len(args) == 2 and isinstance(args[1], Const) and self.path(args[0]) is not None:
            return self.path(args[0]), e.op, args[1].value, truth
        if e.op == "regex.match" and isinstance(args[0], Const) and self.path(args[1]) is not None:
            return self.path(args[1]), "regex", args[0].value, truth
        if e.op in TYPES and self.path(args[0]) is not None:
            return self.path(args[0]), e.op, None, truth
        return None

    def plan(self):
        """(constraints, hard expressions, the fields only messages read)."""
        constraints, hard, shown = [], [], set()
        for e in self.exprs:
            if e.kind == "call" and e.op in ("eq", "equal", "assign") and not e.negated and any(
                    isinstance(a, Var) and (a.name in self.alias or a.name in self.elements) for a in e.args):
                continue
            if e.kind == "call" and not e.negated and all(isinstance(self.const(a), Const) for a in e.args):
                continue  # `__local4__2 = "aws_s3_bucket_acl"`: a name for a constant
            c = self.constraint(e)
            if c is not None:
                constraints.append(c)
            elif e.kind == "call" and e.op in ("eq", "equal", "assign") and any(
                    isinstance(a, Var) and a.name.startswith("__local") for a in e.args) and not any(
                    TIME_FUNCTIONS.match(op) for op in _ops(e)) and not self.uses_computed_beyond(e) and (
                    Var("__local_message") in e.args):
                shown |= set().union(*(self.shown(a) for a in e.args))  # a message's fields
            else:
                hard.append(e)
        return constraints, hard, shown

    def uses_computed_beyond(self, e) -> bool:
        bound = {a.name for a in e.args if isinstance(a, Var)}
        return any(isinstance(t, Var) and t.name in self.computed and t.name not in bound for t in _walk_expr(e))


def _members(value) -> list:
    if isinstance(value, dict):
        return list(value.values())
    return list(value) if isinstance(value, (list, RSet, tuple)) else []


def apply(doc, constraint):
    path, how, value, truth = constraint
    if how == "truthy":
        return set_path(doc, path, True) if truth else delete_path(doc, path)
    if how in COMPARE:
        return set_path(doc, path, solve(how, value, truth))
    if how == "count":
        n = solve(value[0], value[1], truth)
        if not isinstance(n, int) or n < 0 or n > 1000:
            raise Unsolvable("a count Gavel cannot reach")
        return set_path(doc, path, [f"item-{i + 1}" for i in range(n)])
    if how == "copies":
        n = solve(value[0], value[1], truth)
        items = _get(doc, path)
        if not isinstance(n, int) or n < 0 or n > 1000:
            raise Unsolvable("a count Gavel cannot reach")
        item = items[0] if isinstance(items, list) and items else "item-1"
        return set_path(doc, path, [item] * n)
    if how in ("same", "differ"):
        other = _get(doc, value)
        if other is None:
            other = placeholder(value)
            doc = set_path(doc, value, other)
        return set_path(doc, path, other if (how == "same") == truth else different(other))
    if how == "in":
        if truth:
            if not value:
                raise Unsolvable("membership in an empty list")
            return set_path(doc, path, value[0])
        return set_path(doc, path, next(c for c in (f"not-listed-{i}" for i in range(100)) if c not in value))
    if how == "has":
        return set_path(doc, path, [value] if truth else [])
    if how == "has_path":
        item = _get(doc, value)
        if item is None:
            item = placeholder(value)
            doc = set_path(doc, value, item)
        return set_path(doc, path, [item] if truth else [])
    if how in TEXT:
        if truth:
            return set_path(doc, path, {"contains": f"example {value}", "startswith": f"{value}example",
                                        "endswith": f"example{value}"}[how])
        return set_path(doc, path, next(c for c in ("example", "zz", "") if value not in c or not value))
    if how == "regex":
        got = sample_for(value) if truth else next(
            (c for c in ("", "-", "no match here", "0") if not re.search(value, c)), None)
        if got is None:
            raise Unsolvable("no text matches that pattern")
        return set_path(doc, path, got)
    if how in TYPES:
        return set_path(doc, path, TYPES[how] if truth else ("text" if how != "is_string" else 1))
    raise Unsolvable(how)


def _get(doc, path):
    node = doc
    for key in path:
        if isinstance(node, dict) and key in node:
            node = node[key]
        elif isinstance(node, list) and isinstance(key, int) and key < len(node):
            node = node[key]
        else:
            return None
    return node


def pool(solver: Solver, hard: list, path: tuple, several: bool) -> list:
    """Values to try for a field a hard condition reads."""
    if any(TIME_FUNCTIONS.match(op) for e in hard for op in _ops(e)):
        return FAR if several else WEEK
    consts = []
    for c in (t for e in hard for t in _walk_expr(e) if isinstance(t, Const)):
        consts += _members(c.value) if isinstance(c.value, (list, RSet, tuple)) else [c.value]
    consts = [c for c in consts if isinstance(c, (int, float, str)) and not isinstance(c, bool)]
    values: list = []
    for c in consts:
        values += [c, c + 1, c - 1] if isinstance(c, (int, float)) else [c]
    values.sort(key=lambda v: not isinstance(v, str))
    lists = [[v] for v in values if isinstance(v, str)][:3]  # for fields the rule iterates over
    distinct: list = []
    for v in values[:6] + lists + ["example", "Example", 0, 1, 1000, {}, []]:
        if not any(type(v) is type(d) and v == d for d in distinct):
            distinct.append(v)
    return distinct[:14]


def candidates(exprs: list) -> tuple[list, list, list]:
    """Requests to try for one residual query, the conditions solved directly (to break for "does
    not apply"), and requests z3 says break what is left."""
    solver = Solver(exprs)
    constraints, hard, shown = solver.plan()
    doc: dict = {}
    for c in sorted(constraints, key=lambda c: c[1] == "copies"):  # copies of an item once it is built
        doc = apply(doc, c)
    for path in sorted(solver.objects(), key=len):  # object.get(x, ...) reads x as an object
        if path and _get(doc, path) is None:
            doc = set_path(doc, path, {})
    for path in sorted(shown, key=len):
        if path and _get(doc, path) is None:
            doc = set_path(doc, path, placeholder(path))
    read = set().union(set(), *(solver.reads(t) for e in hard for t in _walk_expr(e)))
    for e in hard:
        for t in _walk_expr(e):
            if isinstance(t, Var) and t.name in solver.sources:
                read |= solver.sources[t.name]
    hard_paths = sorted(read - {()} - set(_alias_prefixes(read)), key=len)
    if not hard_paths:  # what is left reads no field Gavel can name: OPA says whether it holds as it is
        return [doc], constraints, []
    out, also = [doc], []  # as it is first: what is left may already hold
    # Arithmetic and text over several fields: z3, with the conditions already solved kept true.
    fixed = [e for e in solver.exprs if e not in hard and solver.constraint(e) is not None
             and any(overlaps(c[0], p) for c in [solver.constraint(e)] for p in hard_paths)]
    yes, no = smt.solve(solver, hard, fixed)
    solved = []
    for model in (yes, no):
        trial = None
        if model:
            trial = doc
            for p, v in model.items():
                trial = set_path(trial, p, v)
        solved.append(trial)
    if solved[0] is not None:
        out.insert(0, solved[0])  # z3's request first: it satisfies every condition
    if solved[1] is not None:
        also.append(solved[1])
    if len(hard_paths) > 3:
        if len(out) > 1:
            return out, constraints, also
        raise Unsolvable("too many fields in conditions Gavel cannot solve")
    pools = [pool(solver, hard, p, len(hard_paths) > 1) for p in hard_paths]
    for combo in itertools.islice(itertools.product(*pools), CANDIDATES):
        trial = doc
        for p, v in zip(hard_paths, combo):
            trial = set_path(trial, p, v)
        out.append(trial)
    return out, constraints, also


def _local(term) -> bool:
    return isinstance(term, Var) and (term.name.startswith("__local") or term.name.startswith("$"))


def _alias_prefixes(paths: set) -> list:
    """Fields that are only the container of another field tried (set through it)."""
    return [p for p in paths if any(len(q) > len(p) and q[:len(p)] == p for q in paths)]


def _ops(e) -> list:
    return [t.op for t in _walk_expr(e) if isinstance(t, Call)] + ([e.op] if e.kind == "call" else [])


def _children(term):
    if isinstance(term, Ref):
        return [term.head, *term.path]
    if isinstance(term, Call):
        return list(term.args)
    if isinstance(term, Collection):
        return [p for item in term.items for p in (item if term.kind == "object" else (item,))]
    if isinstance(term, Unsupported):
        return list(term.inner)
    return []


def _walk_expr(e):
    stack = [t for t in (*e.args, e.term, e.domain) if t is not None]
    while stack:
        t = stack.pop()
        yield t
        stack.extend(_children(t))


def _vars_in_pattern(e) -> list:
    """`[h, m, s] = time.clock(...)`: the vars a computed array binds."""
    if e.kind != "call" or e.op not in ("eq", "equal", "assign"):
        return []
    found = []
    for side in e.args:
        if isinstance(side, Collection) or (isinstance(side, Const) and isinstance(side.value, list)):
            found += [t.name for t in _children(side) if isinstance(t, Var)]
    return found


def breaks(doc, constraints: list) -> list:
    """The request with one solved condition broken at a time: candidates for "does not apply"."""
    out = []
    for c in constraints:
        try:
            broken = apply(doc, (c[0], c[1], c[2], not c[3]))
        except (Unsolvable, CannotBuild, TypeError, ValueError, StopIteration):
            continue
        if broken != doc and broken not in out:
            out.append(broken)
    return out


def requests(ways: list) -> tuple[list, str | None]:
    """(doc, its "does not apply" variants) candidates over the ways one rule applies, or why there are none."""
    tried, why = [], None
    for exprs in ways[:QUERIES]:
        try:
            docs, constraints, also = candidates(exprs)
        except (Unsolvable, CannotBuild, TypeError, ValueError) as exc:
            why = why or f"Gavel could not solve what OPA left of it ({exc})."
            continue
        tried += [(d, n, constraints, also) for n, d in enumerate(docs[:CANDIDATES])]
    return tried, why
