"""Masking: input fields named by path are hashed or erased before a decision is stored.

GAVEL_MASK="args.query=hash,user.email=erase": a hashed field keeps `sha256:<hex>` of its
JSON value, so equal values still match in a search (the seeds' "log a query hash, not
the text"); an erased field is removed. The decision records which paths were masked.
"""
from __future__ import annotations

import copy
import hashlib
import json
from typing import Any

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

MODES = ("hash", "erase")


def rules(spec: str | None = None) -> list[tuple[list[str], str]]:
    spec = settings.GAVEL_MASK if spec is None else spec
    parsed = []
    for item in filter(None, (part.strip() for part in spec.split(","))):
        path, _, mode = item.partition("=")
        keys = [key for key in path.strip().split(".") if key]
        if not keys or mode.strip() not in MODES:
            raise ImproperlyConfigured(f"GAVEL_MASK entry {item!r} is not path=hash or path=erase")
        parsed.append((keys, mode.strip()))
    return parsed


def digest(value: Any) -> str:
    text = json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return "sha256:" + hashlib.sha256(text.encode("utf-8")).hexdigest()


def mask(document: Any, mask_rules: list[tuple[list[str], str]]) -> tuple[Any, list[str]]:
    """(masked copy, ["path=mode", ...] for the fields that were present)."""
    if not mask_rules or not isinstance(document, dict):
        return document, []
    document = copy.deepcopy(document)
    applied = []
    for keys, mode in mask_rules:
        parent = document
        for key in keys[:-1]:
            parent = parent.get(key) if isinstance(parent, dict) else None
        if not isinstance(parent, dict) or keys[-1] not in parent:
            continue
        if mode == "hash":
            parent[keys[-1]] = digest(parent[keys[-1]])
        else:
            del parent[keys[-1]]
        applied.append(f"{'.'.join(keys)}={mode}")
    return document, applied
