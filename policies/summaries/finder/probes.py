"""What OPA itself says about a rule the step-by-step builder (inputs.py) cannot do.

Each such rule is re-stated as a probe (`gavel_example_probe contains [<i>, <its message>] if {...}`
with the rule's own conditions) and OPA partially evaluates every probe in ONE
`opa eval --partial --unknowns input`, with the policy's data known: lookups into `data`, into the
policy's own tables and into other rules are resolved by OPA, leaving, per way the rule can apply,
a few conditions on input fields (`"support" = input.agent.scope; not input.action.tool in [...]`).
solver.py turns those into candidate requests; examples.py has OPA evaluate them, with the real
policy, in the same `opa eval` as every other worked example.
"""
from __future__ import annotations

import json
import tempfile
from dataclasses import replace
from pathlib import Path

from django.conf import settings

from core.opa import cli as opa_cli
from policies.summaries.ast import Collection, Const, Var, convert_expr

PROBE_KEY = "gavel_example_probe"


def probe_source(source: str, rules: list) -> str:
    """The policy with one probe per rule: the same conditions, and its message computed."""
    out = [source.rstrip(), ""]
    for i, rule in enumerate(rules):
        body = [e.text for e in rule.body] or ["true"]
        key = rule.key_text if rule.is_partial_set and rule.key_text else "true"
        lines = "\n".join("\t" + line for b in body for line in b.splitlines())
        out.append(f"{PROBE_KEY} contains [{i}, __gavel_key] if {{\n{lines}\n\t__gavel_key := {key}\n}}\n")
    return "\n".join(out)


def _opa(args: list, source: str, filename: str, data: dict | None) -> dict:
    with tempfile.TemporaryDirectory(prefix="gavel-probes-") as tmp:
        path = Path(tmp) / (Path(filename).name or "policy.rego")
        path.write_text(source, encoding="utf-8")
        extra = ["-d", str(path)]
        if data:
            (Path(tmp) / "data.json").write_text(json.dumps(data), encoding="utf-8")
            extra += ["-d", str(Path(tmp) / "data.json")]
        done = opa_cli.run("eval", "--format", "json", *extra, *args, timeout=settings.GAVEL_EXAMPLES_SECONDS)
    if done.returncode != 0:
        raise RuntimeError((done.stdout or done.stderr).strip()[:2000])
    return json.loads(done.stdout)


def residuals(probed: str, filename: str, package: str, data: dict | None) -> dict[int, list]:
    """Per probe, the ways it can apply: lists of conditions on the input, as OPA leaves them."""
    ref = "data" + "".join(f"[{json.dumps(p)}]" for p in package.split(".")) + f"[{json.dumps(PROBE_KEY)}][x]"
    out = _opa(["--partial", "--unknowns", "input", ref], probed, filename, data)
    found: dict[int, list] = {}
    for query in (out.get("partial") or {}).get("queries") or []:
        index, kept = None, []
        # A comprehension the rule needs non-empty holds for one item at least: its conditions
        # join the query, so the item gets built like any other field.
        inner = [node for q in query for node in _comprehension_bodies(q)]
        for e in map(convert_expr, query + inner):
            got = _probe_index(e)
            if got is None:
                kept.append(e)
                continue
            index, key = got
            if key is not None:  # the message: its fields need values, like any other
                kept.append(replace(e, op="eq", args=(Var("__local_message"), key), negated=False))
        if isinstance(index, int):
            found.setdefault(index, []).append(kept)
    return found


def _comprehension_bodies(node) -> list:
    found = []
    if isinstance(node, dict):
        if str(node.get("type", "")).endswith("comprehension") and isinstance(node.get("value"), dict):
            found += [e for e in node["value"].get("body") or [] if isinstance(e, dict)]
        for v in node.values():
            found += _comprehension_bodies(v)
    elif isinstance(node, list):
        for v in node:
            found += _comprehension_bodies(v)
    return found


def _probe_index(e):
    """(probe number, its message term) when `e` is OPA's `x = [i, message]`, else None."""
    if e.kind != "call" or e.op not in ("eq", "equal") or len(e.args) != 2:
        return None
    for var, other in (e.args, e.args[::-1]):
        if not (isinstance(var, Var) and (var.name == "x" or var.name.startswith("$"))):
            continue
        if isinstance(other, Const) and isinstance(other.value, list) and other.value:
            return other.value[0], Const(other.value[1]) if len(other.value) > 1 else None
        if isinstance(other, Collection) and other.kind == "array" and other.items and isinstance(
                other.items[0], Const):
            return other.items[0].value, other.items[1] if len(other.items) > 1 else None
    return None
