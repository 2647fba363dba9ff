"""The conditions plain solving leaves (arithmetic between fields, text tests on several fields),
handed to the z3 SMT solver: `input.used + input.requested > input.quota` becomes three unknowns
and one inequality, and z3's model is a request that satisfies it. Its negation gives a request
that does not. Only what translates exactly is handed over; anything else stays with the search
(solver.py), and OPA judges every request either way.
"""
from __future__ import annotations

import z3

from policies.summaries.ast import Call, Const, Var

ARITH = {"plus": lambda a, b: a + b, "minus": lambda a, b: a - b, "mul": lambda a, b: a * b,
         "div": lambda a, b: a / b}
ORDER = {"gt": lambda a, b: a > b, "gte": lambda a, b: a >= b, "lt": lambda a, b: a < b, "lte": lambda a, b: a <= b}
TIMEOUT_MS = 2000


class Untranslatable(Exception):
    pass


class Translation:
    """z3 terms for one residual query's conditions; `solver` (solver.Solver) names the fields."""

    def __init__(self, solver):
        self.solver = solver
        self.fields: dict = {}  # path -> z3 constant

    def field(self, path: tuple, sort: str):
        known = self.fields.get(path)
        if known is not None:
            if (sort == "num") != z3.is_arith(known):
                raise Untranslatable("a field used both as a number and as text")
            return known
        name = "input." + ".".join(map(str, path))
        self.fields[path] = z3.Real(name) if sort == "num" else z3.String(name)
        return self.fields[path]

    def term(self, t, sort: str | None):
        t = self.solver.const(t)
        if isinstance(t, Const):
            v = t.value
            if isinstance(v, bool) or v is None:
                raise Untranslatable("a constant that is neither a number nor text")
            if isinstance(v, (int, float)):
                return z3.RealVal(v)
            if isinstance(v, str):
                return z3.StringVal(v)
            raise Untranslatable("a composite constant")
        if isinstance(t, Var) and t.name in self.solver.definitions:
            return self.term(self.solver.definitions[t.name], sort)
        path = self.solver.path(t)
        if path is not None:
            if sort is None:
                raise Untranslatable("a field whose type is unknown")
            return self.field(path, sort)
        if isinstance(t, Call) and t.op in ARITH and len(t.args) == 2:
            a, b = (self.term(x, "num") for x in t.args)
            return ARITH[t.op](a, b)
        raise Untranslatable(getattr(t, "op", type(t).__name__))

    def sort_of(self, args) -> str:
        """Text when the other side is text, else a number."""
        for a in args:
            a = self.solver.const(a)
            if isinstance(a, Const) and isinstance(a.value, str):
                return "str"
            if isinstance(a, Call) and a.op in ARITH:
                return "num"
            path = self.solver.path(a)
            if path is not None and path in self.fields:
                return "num" if z3.is_arith(self.fields[path]) else "str"
        return "num"

    def condition(self, e):
        if e.kind != "call":
            raise Untranslatable(e.kind)
        args = e.args
        if e.op in ORDER:
            a, b = (self.term(x, "num") for x in args)
            out = ORDER[e.op](a, b)
        elif e.op in ("eq", "equal", "neq"):
            sort = self.sort_of(args)
            a, b = (self.term(x, sort) for x in args)
            out = (a == b) if e.op != "neq" else (a != b)
        elif e.op in ("startswith", "endswith", "contains"):
            a, b = (self.term(x, "str") for x in args)
            out = {"startswith": z3.PrefixOf(b, a), "endswith": z3.SuffixOf(b, a), "contains": z3.Contains(a, b)}[e.op]
        else:
            raise Untranslatable(e.op)
        return z3.Not(out) if e.negated else out


def _value(v):
    if z3.is_rational_value(v):
        number = v.as_fraction()
        return int(number) if number.denominator == 1 else float(number)
    if z3.is_string_value(v):
        return v.as_string()
    raise Untranslatable("a value z3 cannot give back")


def _model(conditions: list, fields: dict, extra: list) -> dict | None:
    s = z3.Solver()
    s.set("timeout", TIMEOUT_MS)
    s.add(*conditions)
    for preferred in (extra, []):  # whole, non-negative numbers read best; drop that if it cannot hold
        s.push()
        s.add(*preferred)
        if s.check() == z3.sat:
            m = s.model()
            s.pop()
            return {path: _value(m.eval(var, model_completion=True)) for path, var in fields.items()}
        s.pop()
    return None


def solve(solver, hard: list, fixed: list) -> tuple[dict | None, dict | None]:
    """(fields that make every condition of `hard` and `fixed` hold, fields that keep `fixed` but
    break `hard`), or (None, None) when any of them does not translate or z3 finds no model."""
    tr = Translation(solver)
    try:
        want = [tr.condition(e) for e in hard]
        keep = [tr.condition(e) for e in fixed]
    except (Untranslatable, z3.Z3Exception):
        return None, None
    nice = [z3.And(v >= 0, v == z3.ToReal(z3.ToInt(v))) for v in tr.fields.values() if z3.is_arith(v)]
    try:
        yes = _model(keep + want, tr.fields, nice)
        no = _model(keep + [z3.Not(z3.And(*want))], tr.fields, nice) if want else None
    except (Untranslatable, z3.Z3Exception):
        return None, None
    return yes, no
