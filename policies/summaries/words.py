"""The words summaries are made of: phrases (text, fields, values, links), names and values
as a reader sees them. phrasing.py builds rules out of these."""
from __future__ import annotations

import re

DENY_NAMES = {"deny", "violation", "violations", "warn_deny"}
ALLOW_NAMES = {"allow", "allowed"}
APPROVAL_NAMES = {"require_approval", "requires_approval", "approval_required", "needs_approval"}
LIST_PREVIEW = 8


class CannotPhrase(Exception):
    pass


def effect_of(name: str) -> str | None:
    if name in DENY_NAMES or name.startswith("deny_"):
        return "deny"
    if name in ALLOW_NAMES:
        return "allow"
    if name in APPROVAL_NAMES:
        return "approval"
    return None


def humanize(name: str) -> str:
    return re.sub(r"[_\s]+", " ", str(name)).strip()


def field_name(path) -> str:
    """('token_budget',) -> "the request's token budget"; () -> "the request"."""
    if not path:
        return "the request"
    return "the request's " + " ".join(humanize(p) if isinstance(p, str) else f"item {p}" for p in path)


def format_value(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "null"
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        return f"{value:,}" if not value.is_integer() else f"{int(value):,}"
    if isinstance(value, str):
        return f"“{value}”"
    if isinstance(value, dict):
        return "{" + "; ".join(f"{k}: {format_value(v)}" for k, v in value.items()) + "}"
    return ", ".join(format_value(v) for v in value) or "nothing"


# Phrases ---------------------------------------------------------------------------

class Phrase(list):
    """Parts: {"t": "text"|"field"|"value"|"const"|"link"|"var"|"code", "s": words, ...}."""

    def __add__(self, other):
        if isinstance(other, str):
            other = [{"t": "text", "s": other}]
        return Phrase(list(self) + list(other))

    def __radd__(self, other):
        return Phrase([{"t": "text", "s": other}]) + self

    @property
    def text(self) -> str:
        return "".join(part["s"] for part in self)

    def meta(self, key: str) -> list:
        return sorted({part[key] for part in self if key in part})


def text(s: str) -> Phrase:
    return Phrase([{"t": "text", "s": s}])


def value(v) -> Phrase:
    return Phrase([{"t": "value", "s": format_value(v)}])


def var(name: str) -> Phrase:
    return Phrase([{"t": "var", "s": f"‘{name}’"}])


def link(words: str, anchor: str) -> Phrase:
    return Phrase([{"t": "link", "s": words, "anchor": anchor}])


def join(phrases, sep=", ") -> Phrase:
    out = Phrase()
    for i, p in enumerate(phrases):
        out = out + (sep if i else "") + p
    return out
