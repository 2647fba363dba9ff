"""The ingest contract: what each field of an OPA decision event may hold, and how it is stored.

OPA retries a refused batch forever, so a batch is refused (400, nothing stored) only for
what no OPA sends: an event that is not an object, a decision id or timestamp that is missing
or malformed, a path that is not a string. Everything an end user controls through the input
(or a policy echoes into the result) is stored, made safe: the staged batch keeps the bytes
as received, and the stored decision gets the normalised copy written down in README.md
("The ingest contract"). Both the upload and the worker read events through here, so what
was accepted is what can be stored.
"""
from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from django.utils.dateparse import parse_datetime


class BatchRejected(Exception):
    def __init__(self, status: int, message: str):
        self.status = status
        super().__init__(message)


MAX_DEPTH = 64  # deeper containers are stored as their JSON text, so every page can load them
MAX_INT_DIGITS = 1000  # Python parses at most 4300; longer integers are kept as their digits
BIGINT = 2**63 - 1
ID_CHARS, PATH_CHARS = 100, 500
LABEL_COUNT, LABEL_KEY_CHARS, LABEL_VALUE_CHARS = 50, 100, 200
# Any real clock says a time in here; outside it the weekly partitions have no meaning.
EARLIEST, LATEST = datetime(1970, 1, 1, tzinfo=UTC), datetime(3000, 1, 1, tzinfo=UTC)

# Postgres stores neither U+0000 nor an unpaired surrogate (json.loads leaves "\ud800" as one).
UNSTORABLE = re.compile("[\x00\ud800-\udfff]")


def text(value: str) -> str:
    if value.isascii() and "\x00" not in value:  # most text: no regex needed (a surrogate is not ASCII)
        return value
    return UNSTORABLE.sub("\ufffd", value)


def cut(value: str, limit: int) -> str:
    """At most `limit` characters; a cut one ends with "…" so it reads as cut."""
    return value if len(value) <= limit else value[: limit - 1] + "…"


def _float(literal: str) -> float | str:
    number = float(literal)
    return number if math.isfinite(number) else literal  # 1e400: jsonb has no Infinity


def _int(literal: str) -> int | str:
    return int(literal) if len(literal.lstrip("-")) <= MAX_INT_DIGITS else literal


def loads(raw: bytes | str) -> Any:
    """JSON as the contract reads it: out-of-range numbers and NaN/Infinity become their text."""
    return json.loads(raw, parse_float=_float, parse_int=_int, parse_constant=str)


def compact_json(value: Any) -> str:
    """JSON text of any value, without recursion (it may be nested a thousand levels)."""
    parts: list[str] = []
    stack: list[Any] = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, _Token):
            parts.append(item.text)
        elif isinstance(item, dict):
            stack.append(_Token("}"))
            entries = list(item.items())
            for index in range(len(entries) - 1, -1, -1):
                key, child = entries[index]
                stack += [child, _Token(("," if index else "") + json.dumps(str(key), ensure_ascii=False) + ":")]
            stack.append(_Token("{"))
        elif isinstance(item, list):
            stack.append(_Token("]"))
            for index in range(len(item) - 1, -1, -1):
                stack += [item[index]] + ([_Token(",")] if index else [])
            stack.append(_Token("["))
        else:
            parts.append(json.dumps(item, ensure_ascii=False))
    return "".join(parts)


@dataclass(frozen=True)
class _Token:
    text: str


def storable(value: Any, depth: int = 0) -> Any:
    """The value as jsonb and every page can hold it: strings and keys without U+0000 or lone
    surrogates (U+FFFD instead), no non-finite number, no container deeper than MAX_DEPTH."""
    if isinstance(value, str):
        return text(value)
    if isinstance(value, float) and not math.isfinite(value):
        return repr(value)
    if not isinstance(value, (dict, list)):
        return value
    if depth >= MAX_DEPTH:
        return text(compact_json(value))
    # Leaves are most of a document: the common ones are kept or cleaned here, without a call each.
    if isinstance(value, dict):
        return {text(str(key)): child if type(child) in KEPT else text(child) if type(child) is str
                else storable(child, depth + 1) for key, child in value.items()}
    return [child if type(child) in KEPT else text(child) if type(child) is str
            else storable(child, depth + 1) for child in value]


KEPT = frozenset({int, bool, type(None)})  # stored as they are (floats are checked, strings cleaned)


def decision_id_of(event: dict) -> str:
    decision_id = event.get("decision_id")
    if not isinstance(decision_id, str) or not decision_id or len(decision_id) > ID_CHARS:
        raise ValueError(f"has no decision_id (a string of 1 to {ID_CHARS} characters)")
    return text(decision_id)


def timestamp_of(event: dict) -> datetime:
    stamp = event.get("timestamp")
    if not isinstance(stamp, str):
        raise ValueError("has no RFC 3339 timestamp (a string)")
    try:
        moment = parse_datetime(stamp)
    except ValueError:
        raise ValueError(f"has a timestamp that is not a real date and time: {stamp[:40]!r}")
    if moment is None:
        raise ValueError(f"has no RFC 3339 timestamp: {stamp[:40]!r}")
    if moment.tzinfo is None:
        raise ValueError(f"has a timestamp without a time zone: {stamp[:40]!r}")
    try:
        moment = moment.astimezone(UTC)
    except OverflowError:
        moment = None
    if moment is None or not EARLIEST <= moment < LATEST:
        raise ValueError(f"has a timestamp outside {EARLIEST.year}-{LATEST.year - 1}: {stamp[:40]!r}")
    return moment


def path_of(event: dict) -> str:
    path = event.get("path", "")
    if not isinstance(path, str):
        raise ValueError("has a path that is not a string")
    return cut(text(path), PATH_CHARS)


def labels_of(event: dict) -> dict[str, str]:
    """OPA's labels are strings: those are kept (cut), anything else in them is left out."""
    labels = event.get("labels")
    if not isinstance(labels, dict):
        return {}
    kept = {}
    for key, value in labels.items():
        if isinstance(value, str) and len(kept) < LABEL_COUNT:
            kept[cut(text(key), LABEL_KEY_CHARS)] = cut(text(value), LABEL_VALUE_CHARS)
    return kept


def latency_of(event: dict) -> int | None:
    metrics = event.get("metrics")
    if not isinstance(metrics, dict):
        return None
    latency = metrics.get("timer_rego_query_eval_ns") or metrics.get("timer_server_handler_ns")
    ok = isinstance(latency, int) and not isinstance(latency, bool) and 0 <= latency <= BIGINT
    return latency if ok else None


def short_text(value: Any, limit: int) -> str:
    """A plain string or number, cut to `limit`; anything else is not one and gives ""."""
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        return ""
    return cut(text(str(value)), limit)


def exception_ids_of(entry: dict) -> list[int]:
    applied = entry.get("exceptions_applied")
    if not isinstance(applied, list):
        return []
    return [i for i in applied if isinstance(i, int) and not isinstance(i, bool) and 0 < i <= BIGINT]


def identity(event: dict) -> tuple:
    """What makes two events of one batch the same decision (the stored key, before environment
    comes from the token): the later copies are dropped before any row is built."""
    labels = event.get("labels")
    environment = labels.get("environment") if isinstance(labels, dict) else None
    return (event.get("decision_id"), event.get("timestamp"), environment if isinstance(environment, str) else "")


def check(event: Any) -> None:
    """Raise ValueError saying why an event breaks the contract; return if it can be stored."""
    if not isinstance(event, dict):
        raise ValueError(f"is a {type(event).__name__}, not an object")
    decision_id_of(event)
    timestamp_of(event)
    path_of(event)
