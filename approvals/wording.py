"""A held action in words: for reviewers, what was asked, by whom, and how risky it looks; for
auditors, a row of the queue's CSV export with every review."""
from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Iterator
from itertools import islice
from typing import Any

from django.conf import settings

from core.facts import first_value, scalar_text, user_of

from .models import ApprovalVote

# Unicode's bidirectional controls (LRE..RLO, LRI..PDI, marks): inside a value from outside, they
# could reorder the words after it, so "wants to delete" reads as something else.
BIDI_CONTROLS = re.compile("[\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]")


def _word(value: Any) -> str:
    """A value from the input as one word of the sentence, isolated (FSI...PDI) when it carries
    bidirectional controls, so whatever it reorders stays inside it."""
    text = str(value)
    return f"\u2068{text}\u2069" if BIDI_CONTROLS.search(text) else text


def _scalar(value: Any) -> str:
    return scalar_text(value) if not isinstance(value, str) or value.strip() else ""


def _named_object(request: dict) -> tuple[str, str]:
    """(kind, name) of the one thing the request acts on, when its arguments name it:
    `args.ticket_id` -> ("ticket", "T-39001"), `args.kind` + `args.name` -> ("pod", "payments-7f9c"),
    `resource_type` + `spec.name` -> ("queue", "Old"), `service` -> ("", "checkout")."""
    args = request.get("args") if isinstance(request.get("args"), dict) else {}
    for key, value in args.items():
        if isinstance(key, str) and key.endswith("_id") and _scalar(value):
            return key[:-3].replace("_", " "), _scalar(value)
    for key in ("id", "name"):
        if _scalar(args.get(key)):
            return _scalar(args.get("kind")), _scalar(args[key])
    spec = request.get("spec") if isinstance(request.get("spec"), dict) else {}
    if _scalar(spec.get("name")):
        return _scalar(request.get("resource_type")), _scalar(spec["name"])
    return "", _scalar(request.get("service"))


def describe(request: Any) -> str:
    """The request as a headline: actor, action and target, read through the same fields as the
    audit trail's columns (core.facts, GAVEL_FIELD_*), plus the object its arguments name:
    "support-bot (agent) for u-7 wants to delete ticket T-39001 (helpdesk/tickets) with ticket.delete in prod"."""
    if not isinstance(request, dict):
        return "a request whose input is not an object"
    fields = settings.GAVEL_DECISION_FIELDS
    who = _word(user_of(request) or "someone")
    agent = first_value(request, fields["agent"])
    tool = _scalar(request.get("tool"))
    action = first_value(request, [path for path in fields["action"] if path != "tool"])
    resource = first_value(request, fields["resource"])
    resource_type = _scalar(request.get("resource_type"))
    kind, name = _named_object(request)
    words = [f"{_word(agent)} (agent) for {who}" if agent else who, "wants to", _word(action or "use")]
    if not action and tool:
        words.append(_word(tool))
    if name:
        words.append(f"{_word(kind)} {_word(name)}" if kind else _word(name))
        if resource and resource not in (resource_type, kind):
            words.append(f"({_word(resource)})")
    elif resource:
        words.append(_word(resource))
    if action and tool:
        words.append(f"with {_word(tool)}")
    if _scalar(request.get("environment")):
        words.append(f"in {_word(request['environment'])}")
    return " ".join(words)


GUESSED = {"delete": 2, "write": 1, "update": 1}
LEVELS = {1: "low", 2: "moderate", 3: "elevated", 4: "high", 5: "very high"}


def _guess(request: Any) -> tuple[int, list[str]]:
    request = request if isinstance(request, dict) else {}
    action = str(request.get("action", ""))
    why = ["2 to start with"]
    if GUESSED.get(action):
        why.append(f"+{GUESSED[action]} for a {action}")
    if request.get("environment") == "prod":
        why.append("+1 in prod")
    return min(5, 2 + GUESSED.get(action, 0) + (request.get("environment") == "prod")), why


def risk_explained(request: Any, risk: int) -> str:
    """The score in words, and where it came from: the policy's own `risk`, or Gavel's guess."""
    guessed, why = _guess(request)
    level = f"{risk} of 5, {LEVELS.get(risk, 'unknown')}"
    if guessed == risk:
        return f"{level}: the policy gave no risk, so Gavel guessed it from the action ({', '.join(why)}, at most 5)"
    return f"{level}, as the policy rated it (its result's risk field)"


def risk_of(request: Any, result: Any) -> int:
    """1-5: what the policy says (`risk` in the result), else a guess from the action."""
    if isinstance(result, dict) and isinstance(result.get("risk"), int):
        return max(1, min(5, result["risk"]))
    return _guess(request)[0]


# The export reads plain values a chunk at a time, with each chunk's reviews in one query: Django's
# prefetch (a queryset per held action) took half of an export's time.
EXPORT_HEADER = ["decision_id", "status", "policy", "request", "requester", "reasons", "risk", "approvals",
                 "approvals_required", "reviews", "held_at", "decided_at", "expires_at", "consumed_by_decision"]
EXPORT_CHUNK = 500

_EXPORTED = ["id", "decision_id", "status", "policy__name", "input", "requester", "reasons", "risk",
             "approvals_required", "created_at", "decided_at", "expires_at", "consumed_by_decision"]


def _reviews(held_ids: list[int]) -> dict[int, list[tuple[str, bool, str]]]:
    """(reviewer, approve, comment) of each held action's votes, in the order they were cast."""
    found = defaultdict(list)
    votes = (ApprovalVote.objects.filter(held_action_id__in=held_ids).order_by("created_at", "id")
             .values_list("held_action_id", "reviewer__username", "approve", "comment"))
    for held_id, reviewer, approve, comment in votes:
        found[held_id].append((reviewer, approve, comment))
    return found


def export_rows(held_actions) -> Iterator[list]:
    """The CSV row of each held action in `held_actions` (filtered and ordered), in EXPORT_HEADER order."""
    values = held_actions.values_list(*_EXPORTED).iterator(chunk_size=EXPORT_CHUNK)
    while chunk := list(islice(values, EXPORT_CHUNK)):
        reviews = _reviews([row[0] for row in chunk])
        for (held_id, decision_id, status, policy, request, requester, reasons, risk, required,
             held_at, decided_at, expires_at, consumed_by) in chunk:
            votes = reviews.get(held_id, [])
            yield [decision_id, status, policy or "", describe(request), requester, " | ".join(reasons), risk,
                   sum(1 for _, approve, _ in votes if approve), required,
                   "; ".join(f"{reviewer} {'approved' if approve else 'rejected'}: {comment}"
                             for reviewer, approve, comment in votes),
                   held_at.isoformat(), decided_at.isoformat() if decided_at else "", expires_at.isoformat(),
                   consumed_by]
