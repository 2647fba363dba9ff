"""Rules as English, built from the tree in `ast.py`.

A phrase is a list of parts (plain text, a field of the request, a value, a list defined
in the policy, a link to a helper rule) so pages can mark fields and link helpers while
everything stays JSON. Anything outside the constructs below raises CannotPhrase, and
the caller shows the Rego instead: a summary must never claim what a rule does not do.
"""
from __future__ import annotations

import re

from policies.summaries import functions
from policies.summaries.ast import Call, Collection, Comprehension, Const, Expr, Ref, RSet, Rule, RuleRef, Var
from policies.summaries.localeval import hoisted_args
from policies.summaries.words import (  # noqa: F401 (re-exported: the names other modules use)
    ALLOW_NAMES,
    APPROVAL_NAMES,
    DENY_NAMES,
    LIST_PREVIEW,
    CannotPhrase,
    Phrase,
    effect_of,
    field_name,
    format_value,
    humanize,
    join,
    link,
    text,
    value,
    var,
)

ITEM = "gavel.item"  # one item of a function's list value, bound by `[a, b] := f(x)`


# Terms as noun phrases -------------------------------------------------------------

COMPARISONS = {
    "equal": ("is", "is not"), "eq": ("is", "is not"), "neq": ("is not", "is"),
    "gt": ("is more than", "is not more than"), "gte": ("is at least", "is less than"),
    "lt": ("is less than", "is not less than"), "lte": ("is at most", "is more than"),
}
TYPE_WORDS = {
    "is_string": "text", "is_number": "a number", "is_boolean": "true or false", "is_object": "a JSON object",
    "is_array": "a list", "is_set": "a set", "is_null": "null",
}
TEXT_TESTS = {
    "contains": ("contains", "does not contain"), "startswith": ("starts with", "does not start with"),
    "endswith": ("ends with", "does not end with"),
}


class RuleContext:
    """What one rule body means: its module's rules, and its local variables."""

    def __init__(self, module, rule: Rule):
        self.module = module
        self.rules = {}
        for r in module.rules:
            self.rules.setdefault(r.name, []).append(r)
        self.assigned = {}
        self.iterated = {a.name for a in rule.args if isinstance(a, Var)}  # a function's parameters too
        self.learn(rule.body)

    def learn(self, body) -> None:
        for expr in body:
            if expr.kind == "call" and expr.op in ("assign", "eq") and isinstance(expr.args[0], Var):
                self.assigned.setdefault(expr.args[0].name, expr.args[1])
            if expr.kind == "call" and expr.op in ("assign", "eq") and isinstance(expr.args[0], Collection) and \
                    expr.args[0].kind == "array":  # [hour, _, _] := time.clock(t)
                for i, item in enumerate(expr.args[0].items):
                    if isinstance(item, Var) and not _is_wildcard(item):
                        self.assigned.setdefault(item.name, Call(ITEM, (Const(i), expr.args[1])))
            if expr.kind == "some_in":
                self.iterated.update(v.name for v in expr.some_vars if isinstance(v, Var))

    def inner(self, body) -> "RuleContext":
        """The same context with a comprehension's own variables known."""
        other = object.__new__(RuleContext)
        other.module, other.rules = self.module, self.rules
        other.assigned, other.iterated = dict(self.assigned), set(self.iterated)
        other.learn(body)
        return other

    def constant(self, name: str):
        defs = self.rules.get(name, [])
        return defs[0].value.value if len(defs) == 1 and defs[0].is_constant else None

    def is_constant(self, name: str) -> bool:
        defs = self.rules.get(name, [])
        return len(defs) == 1 and defs[0].is_constant

    def anchor(self, name: str) -> str:
        if effect_of(name):
            return f"group-{effect_of(name)}"
        return f"list-{name}" if self.is_constant(name) else f"rule-{name}"

    def label(self, name: str) -> str:
        title = next((r.annotations.get("title") for r in self.rules.get(name, []) if r.annotations.get("title")), None)
        return title or humanize(name)


def noun(term, ctx: RuleContext) -> Phrase:
    if isinstance(term, Const):
        return value(term.value)
    if isinstance(term, Var):
        if term.name == "input":
            return Phrase([{"t": "field", "s": "the request", "path": ""}])
        if term.name in ctx.assigned and term.name not in ctx.iterated:
            bound = ctx.assigned[term.name]
            try:
                return noun(bound, ctx)
            except CannotPhrase:
                return var(term.name)
        if term.name in ctx.iterated:
            return var(term.name)
        raise CannotPhrase(f"the variable {term.name}")
    if isinstance(term, RuleRef):
        return rule_noun(term.name, ctx)
    if isinstance(term, Ref):
        return ref_noun(term, ctx)
    if isinstance(term, Call):
        return call_noun(term, ctx)
    if isinstance(term, Comprehension):
        return comprehension_noun(term, ctx)
    if isinstance(term, Collection) and term.kind in ("array", "set"):
        return join([noun(i, ctx) for i in term.items])
    if isinstance(term, Collection) and term.kind == "object":
        # {"allow": allow, "reasons": reasons}: "made of allow, from “Allow”, and reasons, from “reasons”"
        pairs = [(text(humanize(k.value)) if isinstance(k, Const) and isinstance(k.value, str) else noun(k, ctx))
                 + ", from " + noun(v, ctx) for k, v in term.items]
        return "made of " + (join(pairs[:-1], "; ") + "; and " + pairs[-1] if len(pairs) > 1 else join(pairs))
    raise CannotPhrase(getattr(term, "kind", type(term).__name__))


def rule_noun(name: str, ctx: RuleContext, bare: bool = False) -> Phrase:
    if ctx.is_constant(name):
        const = Phrase([{"t": "const", "s": humanize(name), "name": name, "anchor": ctx.anchor(name)}])
        scalar = ctx.constant(name)
        if bare or isinstance(scalar, (list, dict, RSet)):
            return const
        return value(scalar) + " (" + const + ")"  # a limit reads as its number: "8,000 (max token budget)"
    if name not in ctx.rules:
        raise CannotPhrase(name)
    if effect_of(name) == "deny":
        return link(f"the {humanize(name)} messages", ctx.anchor(name))
    return link(f"“{ctx.label(name)}”", ctx.anchor(name))


def constant_listing(name: str, ctx: RuleContext) -> Phrase:
    """`blocked users` with its values when short: "blocked users: u-107, u-118"."""
    const = ctx.constant(name)
    head = rule_noun(name, ctx, bare=True)
    if isinstance(const, (list, RSet)):
        shown = [value(v) for v in list(const)[:LIST_PREVIEW]]
        more = f" and {len(const) - LIST_PREVIEW} more" if len(const) > LIST_PREVIEW else ""
        return head + ": " + join(shown) + more
    if isinstance(const, dict):
        return head
    return value(const) + " (" + head + ")"


def ref_noun(ref: Ref, ctx: RuleContext) -> Phrase:
    path = ref.input_path
    if path is not None:
        return Phrase([{"t": "field", "s": field_name(path), "path": ".".join(map(str, path))}])
    if isinstance(ref.head, RuleRef) and ctx.is_constant(ref.head.name) and len(ref.path) == 1:
        # agent_tools[input.agent.id]: one entry of an object the policy defines
        return "the " + rule_noun(ref.head.name, ctx) + " listed for " + noun(ref.path[0], ctx)
    if ref.head == Var("input") and len(ref.path) > 1 and _is_wildcard(ref.path[-1]):
        prefix = Ref(ref.head, ref.path[:-1]).input_path
        if prefix is not None:  # input.items[_]: any one entry
            return "any entry of " + ref_noun(Ref(ref.head, ref.path[:-1]), ctx)
    if ref.head == Var("data"):
        return data_noun(ref, ctx)
    if all(isinstance(p, Const) for p in ref.path) and (
            isinstance(ref.head, (Call, Ref)) or (isinstance(ref.head, Var) and ref.head.name in ctx.assigned)):
        return noun(ref.head, ctx) + "'s " + humanize(" ".join(str(p.value) for p in ref.path))
    if isinstance(ref.head, Var) and ref.head.name in ctx.iterated and all(isinstance(p, Const) for p in ref.path):
        return var(ref.head.name) + "'s " + humanize(" ".join(str(p.value) for p in ref.path))
    if isinstance(ref.head, RuleRef) and ref.path and all(isinstance(p, Const) for p in ref.path[1:]):
        # buckets[name].change.after: one entry of a rule's value, and a field inside it
        entry = "the entry for " + noun(ref.path[0], ctx) + " in " + rule_noun(ref.head.name, ctx)
        inside = humanize(" ".join(str(p.value) for p in ref.path[1:]))
        return (inside + " of " + entry) if inside else entry
    raise CannotPhrase("a reference")


def data_noun(ref: Ref, ctx: RuleContext) -> Phrase:
    """data.acme.scopes[input.agent.scope]: "the entry for the request's agent scope in the data acme › scopes"."""
    names, rest = [], list(ref.path)
    while rest and isinstance(rest[0], Const) and isinstance(rest[0].value, str):
        names.append(rest.pop(0).value)
    where = Phrase([{"t": "data", "s": "the data " + " › ".join(names) + " (kept outside this policy)",
                     "ref": "data." + ".".join(names)}])
    if not rest:
        return where
    if len(rest) == 1:
        return "the entry for " + noun(rest[0], ctx) + " in " + where
    raise CannotPhrase("a reference into data")


def comprehension_noun(term: Comprehension, ctx: RuleContext, counted: bool = False) -> Phrase:
    """{c | some c in xs} reads "the entries of xs"; with conditions, "... where ..."."""
    inner = ctx.inner(term.body)
    body = list(term.body)
    source = next((e for e in body if e.kind == "some_in" and not e.negated), None)
    if source is None:
        raise CannotPhrase("a comprehension")
    key, val = source.some_vars
    rest = [e for e in body if e is not source]
    head = term.head
    if isinstance(head, Var) and head == val and counted:
        lead = var(val.name) + " in " + noun(source.domain, inner)
    elif isinstance(head, Var) and head == val:
        lead = "the entries of " + noun(source.domain, inner)
    elif isinstance(head, Var) and head == key:
        lead = "the names in " + noun(source.domain, inner)
    else:
        item = var(val.name) if isinstance(val, Var) else text("entry")
        lead = "each " + noun(head, inner) + " for every " + item + " in " + noun(source.domain, inner)
    conditions = [c for c in (_condition(e, inner) for e in rest) if c is not None]
    return lead + ((" where " + join(conditions, " and ")) if conditions else "")


def _is_wildcard(term) -> bool:
    return isinstance(term, Var) and term.name.startswith("$")


def call_noun(call: Call, ctx: RuleContext) -> Phrase:
    op, args = call.op, call.args
    if op == "lower":
        return noun(args[0], ctx) + " in lower case"
    if op == "upper":
        return noun(args[0], ctx) + " in upper case"
    if op == "trim_space":
        return noun(args[0], ctx) + " without surrounding spaces"
    if op == "count":
        if isinstance(args[0], Comprehension):  # "the number of ‘a’ in the request's attachments where ..."
            return "the number of " + comprehension_noun(args[0], ctx, counted=True)
        if isinstance(args[0], RuleRef) and effect_of(args[0].name):
            return "the number of " + rule_noun(args[0].name, ctx)
        return "the number of entries in " + noun(args[0], ctx)
    if op == "object.get" and args[0] == Var("input") and isinstance(args[1], Const):
        path = args[1].value if isinstance(args[1].value, list) else [args[1].value]
        return ref_noun(Ref(Var("input"), tuple(Const(p) for p in path)), ctx)
    if op == "sort":
        return noun(args[0], ctx) + ", sorted"
    if op == "or":
        return noun(args[0], ctx) + " together with " + noun(args[1], ctx)
    if op in ("plus", "minus", "mul"):
        word = {"plus": " plus ", "minus": " minus ", "mul": " times "}[op]
        return noun(args[0], ctx) + word + noun(args[1], ctx)
    if op == "sprintf":
        return message_phrase(call, ctx)
    if op == ITEM:
        index, inner = args[0].value, args[1]
        if isinstance(inner, Call) and inner.op in functions.ITEMS:
            return template(functions.item_template(inner.op, index), inner.args, ctx)
        return f"item {index + 1} of " + noun(inner, ctx)
    if op in functions.NOUNS:
        return template(functions.NOUNS[op], args, ctx)
    if op in ctx.rules and any(r.args for r in ctx.rules[op]):  # a function the policy defines
        return link(f"“{ctx.label(op)}”", ctx.anchor(op)) + " for " + join([noun(a, ctx) for a in args], " and ")
    raise CannotPhrase(f"the function {op}")


def template(words: str, args, ctx: RuleContext) -> Phrase:
    out = Phrase()
    try:
        pieces = functions.fill(words, list(args))
    except IndexError:
        raise CannotPhrase("a function with fewer arguments than expected") from None
    for piece in pieces:
        out = out + (noun(args[piece], ctx) if isinstance(piece, int) else text(piece))
    return out


def message_phrase(term, ctx: RuleContext) -> Phrase:
    """A reason message with its blanks named: “token budget ‹token budget› exceeds …”."""
    if isinstance(term, Const) and isinstance(term.value, str):
        return text(term.value)
    if isinstance(term, Var) and term.name in ctx.assigned:
        return message_phrase(ctx.assigned[term.name], ctx)
    if isinstance(term, Call) and term.op == "sprintf" and isinstance(term.args[0], Const):
        fmt = term.args[0].value
        args = term.args[1].items if isinstance(term.args[1], Collection) else (
            [Const(v) for v in term.args[1].value] if isinstance(term.args[1], Const) else None)
        if args is None:
            raise CannotPhrase("a message")
        pieces = re.split(r"(%[-+# 0-9.]*[a-zA-Z%])", fmt)
        out, i = Phrase(), 0
        for piece in pieces:
            if re.fullmatch(r"%[-+# 0-9.]*[a-zA-Z]", piece) and i < len(args):
                # brackets mark a placeholder in plain text; pages style it instead
                # "user ‹user id› is suspended": a field reads by its short name, marked as a blank
                inner = Phrase([dict(p, placeholder=True, s=p["s"].removeprefix("the request's "))
                                if p.get("t") == "field" and p.get("path") else dict(p, placeholder=True)
                                for p in noun(args[i], ctx)])
                out = out + Phrase([{"t": "open", "s": "‹"}]) + inner + Phrase([{"t": "close", "s": "›"}])
                i += 1
            elif piece:
                out = out + ("%" if piece == "%%" else piece)
        return out
    raise CannotPhrase("a message")


def message_template(term, ctx: RuleContext) -> str | None:
    """The sprintf format (or the literal message) a rule adds, for recognising it in OPA's answer."""
    if isinstance(term, Const) and isinstance(term.value, str):
        return term.value
    if isinstance(term, Var) and term.name in ctx.assigned:
        return message_template(ctx.assigned[term.name], ctx)
    if isinstance(term, Call) and term.op == "sprintf" and isinstance(term.args[0], Const):
        return term.args[0].value
    return None


# Conditions as sentences -----------------------------------------------------------

def condition(expr: Expr, ctx: RuleContext) -> Phrase | None:
    """One body expression as a sentence; None for bindings that state nothing on their own."""
    phrase = _condition(expr, ctx)
    if phrase is None or not expr.negated or expr.kind != "call":
        return phrase
    # OPA evaluates a negated call's arguments before the `not`: a missing field there means
    # the rule does not apply, so say the field must be present.
    paths = []
    for arg in hoisted_args(expr):
        if isinstance(arg, Call) and arg.op == "object.get":
            continue  # has a default, so it is never missing
        for part in noun(arg, ctx):
            if part.get("t") == "field" and part["path"] and part["path"] not in paths:
                paths.append(part["path"])
    if not paths:
        return phrase
    if len(paths) == 1 and _subject_path(expr) == paths[0]:
        return phrase + " (and is present)"
    names = [Phrase([{"t": "field", "s": field_name(tuple(p.split("."))), "path": p}]) for p in paths]
    return phrase + " (and " + join(names, " and ") + (" are present)" if len(paths) > 1 else " is present)")


def _subject_path(expr: Expr) -> str | None:
    subject = expr.args[1] if expr.op == "regex.match" else expr.args[0]
    while isinstance(subject, Call) and subject.args:
        subject = subject.args[0]
    path = subject.input_path if isinstance(subject, Ref) else None
    return ".".join(map(str, path)) if path else None


def _condition(expr: Expr, ctx: RuleContext) -> Phrase | None:
    if expr.kind == "unsupported":
        raise CannotPhrase(expr.why)
    if expr.kind == "some_in":
        key, val = expr.some_vars
        domain = constant_listing(expr.domain.name, ctx) if isinstance(expr.domain, RuleRef) and ctx.is_constant(
            expr.domain.name) else noun(expr.domain, ctx)
        named = [v.name for v in (key, val) if isinstance(v, Var) and not _is_wildcard(v)]
        if key is not None and len(named) == 2:
            head = text("for some key ") + var(named[0]) + " and value " + var(named[1]) + " in "
        else:
            head = text("for some ") + (var(named[-1]) if named else text("entry")) + " in "
        return head + domain
    if expr.kind == "term":
        return truthy(expr.term, expr.negated, ctx)
    op, args = expr.op, expr.args
    if op in ("assign", "eq") and isinstance(args[0], Var) and ctx.assigned.get(args[0].name) is args[1]:
        noun(args[1], ctx)  # raises for a value Gavel cannot phrase, so that line is shown as written
        return None
    if op in ("assign", "eq") and isinstance(args[0], Collection) and args[0].kind == "array" and all(
            isinstance(i, Var) for i in args[0].items):
        noun(args[1], ctx)  # [hour, _, _] := time.clock(t): the parts are named where they are used
        return None
    if op in functions.CONDITIONS and not expr.negated:
        return template(functions.CONDITIONS[op][0], args, ctx)
    if op in functions.CONDITIONS:
        return template(functions.CONDITIONS[op][1], args, ctx)
    if op in ctx.rules and any(r.args for r in ctx.rules[op]):  # a function the policy defines, as a check
        check = link(f"“{ctx.label(op)}”", ctx.anchor(op))
        return check + (" does not hold for " if expr.negated else " holds for ") + join(
            [noun(a, ctx) for a in args], " and ")
    if op in COMPARISONS:
        special = count_of_group(op, args, expr.negated, ctx)
        if special is not None:
            return special
        yes, no = COMPARISONS[op]
        words = no if expr.negated else yes
        sentence = noun(args[0], ctx) + f" {words} " + noun(args[1], ctx)
        missing_counts = expr.negated and op in ("equal", "eq") and _mentions_input(args)
        return sentence + (" (or is missing)" if missing_counts else "")
    if op == "internal.member_2":
        return membership(args[0], args[1], expr.negated, ctx)
    if op in TEXT_TESTS:
        yes, no = TEXT_TESTS[op]
        return noun(args[0], ctx) + f" {no if expr.negated else yes} " + noun(args[1], ctx)
    if op == "regex.match":
        pattern = Phrase([{"t": "code", "s": str(args[0].value)}]) if isinstance(args[0], Const) else noun(args[0], ctx)
        verb = " does not match the pattern " if expr.negated else " matches the pattern "
        return noun(args[1], ctx) + verb + pattern
    if op in TYPE_WORDS:
        return noun(args[0], ctx) + (" is not " if expr.negated else " is ") + TYPE_WORDS[op]
    raise CannotPhrase(f"the function {op}")


def _mentions_input(terms) -> bool:
    def walk(t):
        if isinstance(t, Var):
            return t.name == "input"
        if isinstance(t, Ref):
            return walk(t.head) or any(walk(p) for p in t.path)
        if isinstance(t, Call):
            return any(walk(a) for a in t.args)
        return False
    return any(walk(t) for t in terms)


def count_of_group(op, args, negated, ctx) -> Phrase | None:
    """count(deny) == 0 reads "no deny rule applies"."""
    left, right = args
    if not (isinstance(left, Call) and left.op == "count" and isinstance(left.args[0], RuleRef)
            and effect_of(left.args[0].name) and right == Const(0) and op in ("equal", "gt", "neq")):
        return None
    none_apply = (op == "equal") != negated
    group = link(f"{humanize(left.args[0].name)} rule", ctx.anchor(left.args[0].name))
    return ("no " + group + " applies") if none_apply else ("at least one " + group + " applies")


def truthy(term, negated: bool, ctx: RuleContext) -> Phrase:
    if isinstance(term, RuleRef) and not ctx.is_constant(term.name):
        defs = ctx.rules.get(term.name, [])
        if not all(r.value == Const(True) and r.key is None for r in defs if not r.is_default):
            raise CannotPhrase("a non-boolean rule used as a condition")
        check = link(f"“{ctx.label(term.name)}”", ctx.anchor(term.name))
        return "the check " + check + (" does not pass" if negated else " passes")
    if isinstance(term, Ref) and term.input_path is not None:
        return noun(term, ctx) + (" is missing or false" if negated else " is present and not false")
    if isinstance(term, Call) and term.op in functions.CONDITIONS:
        return template(functions.CONDITIONS[term.op][1 if negated else 0], term.args, ctx)
    if isinstance(term, (Ref, Call)):
        return noun(term, ctx) + (" is missing or false" if negated else " is present and not false")
    raise CannotPhrase("a bare value used as a condition")


def membership(item, collection, negated: bool, ctx: RuleContext) -> Phrase:
    if isinstance(collection, RuleRef) and ctx.is_constant(collection.name):
        listed = constant_listing(collection.name, ctx)
        return noun(item, ctx) + (" is not on the list " if negated else " is on the list ") + listed
    if isinstance(collection, Const) and isinstance(collection.value, (list, RSet)):
        return noun(item, ctx) + (" is none of " if negated else " is one of ") + noun(collection, ctx)
    return noun(item, ctx) + (" is not in " if negated else " is in ") + noun(collection, ctx)
