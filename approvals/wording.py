"""A held action in words for reviewers: what was asked, by whom, and how risky it looks."""
from __future__ import annotations

import re
from typing import Any

from core.facts import user_of

# Unicode's bidirectional controls (LRE..RLO, LRI..PDI, marks): inside a value from outside, they
# could reorder the words after it, so "wants to delete" reads as something else.
BIDI_CONTROLS = re.compile("[\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]")


def _word(value: Any) -> str:
    """A value from the input as one word of the sentence, isolated (FSI...PDI) when it carries
    bidirectional controls, so whatever it reorders stays inside it."""
    text = str(value)
    return f"\u2068{text}\u2069" if BIDI_CONTROLS.search(text) else text


def describe(request: Any) -> str:
    """The request in plain words, from the fields enforcement points commonly send:
    "support-bot (agent) for u-128 wants to delete with k8s.delete on k8s/payments in prod"."""
    if not isinstance(request, dict):
        return "a request whose input is not an object"
    who = _word(user_of(request) or "someone")
    agent = request.get("agent", {}).get("id") if isinstance(request.get("agent"), dict) else None
    spec = request.get("spec") if isinstance(request.get("spec"), dict) else {}
    action, tool = request.get("action"), request.get("tool")
    target = request.get("resource") or request.get("service") or spec.get("name")
    words = [f"{_word(agent)} (agent) for {who}" if agent else who, "wants to", _word(action or "use")]
    if tool:
        words.append(f"with {_word(tool)}" if action else _word(tool))
    if request.get("resource_type"):
        words.append(_word(request["resource_type"]))
    if target:
        words.append(f"on {_word(target)}" if tool else _word(target))
    if request.get("environment"):
        words.append(f"in {_word(request['environment'])}")
    return " ".join(words)


def risk_of(request: Any, result: Any) -> int:
    """1-5: what the policy says (`risk` in the result), else a guess from the action."""
    if isinstance(result, dict) and isinstance(result.get("risk"), int):
        return max(1, min(5, result["risk"]))
    request = request if isinstance(request, dict) else {}
    risk = 2 + {"delete": 2, "write": 1, "update": 1}.get(str(request.get("action", "")), 0)
    return min(5, risk + (request.get("environment") == "prod"))
