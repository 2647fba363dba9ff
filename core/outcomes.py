"""Read an allow/deny/require-approval outcome and its reasons out of a decision result.

OPA returns whatever the queried rule produces. Gavel understands three shapes:
a boolean (`allow`), an object (`{"allow": ..., "reasons": [...], "require_approval": ...}`,
which Gavel's entrypoints extend with `would_deny` and `would_require_approval` for dry-run), and a set of deny messages
(`deny contains msg if ...`). Anything else is stored as is
with an undefined outcome, never dropped.
"""
from __future__ import annotations

import json
from typing import Any

from .models import Outcome

_MISSING = object()


def _as_text(reason: Any) -> str:
    if isinstance(reason, str):
        return reason
    if isinstance(reason, dict):
        for key in ("msg", "message", "reason"):
            if isinstance(reason.get(key), str):
                return reason[key]
    return json.dumps(reason, sort_keys=True, ensure_ascii=False)


def _reasons(value: Any) -> list[str]:
    if value is None:
        return []
    if isinstance(value, (list, tuple)):
        return [_as_text(v) for v in value]
    if isinstance(value, dict):  # an object of reason id -> message
        return [_as_text(v) for v in value.values()]
    return [_as_text(value)]


def derive_outcome(result: Any = _MISSING) -> tuple[str, list[str]]:
    """(outcome, reasons) for a decision result. Call with no argument for an undefined result."""
    if result is _MISSING or result is None:
        return Outcome.UNDEFINED, []
    if isinstance(result, bool):
        return (Outcome.ALLOW if result else Outcome.DENY), []
    if isinstance(result, list):
        reasons = _reasons(result)
        return (Outcome.DENY if reasons else Outcome.ALLOW), reasons
    if isinstance(result, dict):
        reasons = _reasons(result.get("reasons", result.get("reason")))
        deny = result.get("deny")
        if isinstance(deny, (list, dict)) and not reasons:
            reasons = _reasons(deny)
        if result.get("require_approval") is True:
            return Outcome.REQUIRE_APPROVAL, reasons
        if result.get("would_require_approval") is True:  # dry-run: allowed, enforcement would hold it
            return Outcome.WOULD_REQUIRE_APPROVAL, reasons
        if result.get("would_deny") is True:  # dry-run: allowed, but the policy said no
            return Outcome.WOULD_DENY, reasons
        if isinstance(result.get("allow"), bool):
            return (Outcome.ALLOW if result["allow"] else Outcome.DENY), reasons
        if isinstance(deny, (list, dict)):
            return (Outcome.DENY if deny else Outcome.ALLOW), reasons
        if isinstance(deny, bool):
            return (Outcome.DENY if deny else Outcome.ALLOW), reasons
    return Outcome.UNDEFINED, []
