"""How well the summaries cover a set of policies: the figures issue 19 asks for.

    figures(summaries) -> {"policies", "rules", "phrased", "decision_rules", "with_examples",
                           "examples", "agreeing", "gaps": [...]}

A rule is phrased when its summary has no Rego left in it; a decision rule (deny, allow,
approval) has examples when OPA confirmed one request that triggers it and one that does not.
"""
from __future__ import annotations

import json
import re
from pathlib import Path

from policies.summaries import summarize_many
from policies.summaries.summary import all_rules

# What Rego looks like when it leaks into a sentence: refs, operators, calls, comprehensions.
REGO_LEFTOVER = re.compile(r"\binput\.|\bdata\.|:=|==|!=|\[_\]|\b[a-z_][a-z0-9_]*\.[a-z_0-9]+\(|\b[a-z_]+\("
                           r"|\bsome \w+ in\b|\bcontains \w+ if\b|\{[a-z_]+ \|")


def rule_text(record: dict) -> str:
    """Everything a reader sees of one rule, in words."""
    bits = [(record.get("message") or {}).get("text") or "", record.get("sentence") or ""]
    bits += [c["text"] for c in record["conditions"]]
    bits += [(record.get("value") or {}).get("text") or ""]
    return "\n".join(bits)


def leftovers(record: dict) -> list[str]:
    """The Rego fragments in a rule's prose (empty when it reads as words)."""
    if record.get("snippet") or not record.get("phrased", True):
        notes = [c["note"] for c in record["conditions"] if c.get("fallback")] + [record.get("note") or ""]
        return [next(n for n in notes if n) if any(notes) else "a condition shown as written"]
    return REGO_LEFTOVER.findall(rule_text(record))


def has_examples(record: dict) -> bool:
    kinds = [e["kind"] for e in record.get("examples") or [] if e["agrees"]]
    return "triggers" in kinds and "does_not_trigger" in kinds


def figures(summaries: dict) -> dict:
    out = {"policies": len(summaries), "rules": 0, "phrased": 0, "decision_rules": 0, "with_examples": 0,
           "examples": 0, "agreeing": 0, "gaps": []}
    for name, summary in sorted(summaries.items()):
        for record in all_rules(summary):
            out["rules"] += 1
            left = leftovers(record)
            if left:
                out["gaps"].append({"policy": name, "rule": record["anchor"], "what": "not phrased",
                                    "why": ", ".join(map(str, left))[:200]})
            else:
                out["phrased"] += 1
        for group in summary["groups"]:
            for record in group["rules"]:
                out["decision_rules"] += 1
                out["examples"] += len(record.get("examples") or [])
                out["agreeing"] += sum(1 for e in record.get("examples") or [] if e["agrees"])
                if has_examples(record):
                    out["with_examples"] += 1
                else:
                    out["gaps"].append({"policy": name, "rule": record["anchor"], "what": "no examples",
                                        "why": record.get("example_note") or ""})
        if (summary.get("examples") or {}).get("error"):
            out["gaps"].append({"policy": name, "rule": "-", "what": "OPA error", "why": summary["examples"]["error"]})
    return out


def test_data(path: Path):
    """The data a corpus policy reads outside itself: `<name>.data.json` beside it, if any."""
    beside = path.with_suffix(".data.json")
    return json.loads(beside.read_text()) if beside.exists() else None


def summarize_files(paths) -> dict:
    """name -> summary with worked examples, for policy files (and their test data); OPA evaluates
    the worked examples of all of them in one process (summarize_many)."""
    paths = list(paths)
    made = summarize_many([(p.read_text(), p.name, test_data(p)) for p in paths])
    return {p.name: summary for p, summary in zip(paths, made)}
