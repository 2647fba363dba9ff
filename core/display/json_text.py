"""Decision inputs and results as text a page can show, however deep or large they are.

Pages pretty-print the first DEPTH levels; anything deeper is collapsed onto one line, and the
whole text stops after CHARS characters, the page then offering "show all". Stored values are
at most 64 levels deep (the ingest contract, audit/ingest/contract.py), so even "show all" never recurses too far.
"""
from __future__ import annotations

import json
from typing import Any

DEPTH, CHARS, COLLAPSED_CHARS = 12, 200_000, 300


def _collapse(value: Any, depth: int) -> Any:
    if not isinstance(value, (dict, list)):
        return value
    if depth >= DEPTH:
        line = json.dumps(value, ensure_ascii=False, sort_keys=True)
        return line if len(line) <= COLLAPSED_CHARS else line[: COLLAPSED_CHARS - 1] + "…"
    if isinstance(value, dict):
        return {key: _collapse(child, depth + 1) for key, child in value.items()}
    return [_collapse(child, depth + 1) for child in value]


def shown(value: Any, everything: bool = False) -> tuple[str, bool]:
    """(text, whether some of it was left out). Collapsed parts show as one-line JSON strings."""
    full = json.dumps(value, indent=2, ensure_ascii=False, sort_keys=True)
    if everything:
        return full, False
    text = json.dumps(_collapse(value, 0), indent=2, ensure_ascii=False, sort_keys=True)
    if len(text) > CHARS:
        return text[:CHARS] + "\n…", True
    return text, text != full
