"""What an exported decision looks like in CSV and JSON Lines, and how a file's rows are counted back.

Both formats carry the same columns, read with `.values()` (no model instances, so rows stay
cheap) in the order the search returns them. Decision inputs come from outside: CSV cells that
a spreadsheet would run as a formula are neutralised (csv_export.neutralise), and JSON Lines
escapes every character that could end a line, so each decision is exactly one line.
"""
from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterable, Iterator
from datetime import datetime

from .csv_export import csv_lines

# (column in the file, field read from the database)
COLUMNS = (
    ("decision_id", "decision_id"),
    ("timestamp", "timestamp"),
    ("path", "path"),
    ("outcome", "outcome"),
    ("reasons", "reasons"),
    ("policy", "policy__name"),
    ("version", "version__number"),
    ("version_source", "version_source"),
    ("effective_mode", "effective_mode"),
    ("environment", "environment"),
    ("instance", "instance"),
    ("user", "user"),
    ("agent", "agent"),
    ("action", "action"),
    ("resource", "resource"),
    ("exception_ids", "exception_ids"),
    ("approval_ref", "approval_ref"),
    ("masked", "masked"),
    ("latency_ns", "latency_ns"),
    ("requested_by", "requested_by"),
    ("received_at", "received_at"),
    ("input", "input"),
    ("result", "result"),
)
HEADER = [name for name, _ in COLUMNS]
FIELDS = [field for _, field in COLUMNS]
# Lists and documents are JSON inside a CSV cell, so nothing is lost flattening them.
JSON_CELLS = {"reasons", "exception_ids", "masked", "input", "result"}


def _plain(value):
    return value.isoformat() if isinstance(value, datetime) else value


def _compact(value) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"), sort_keys=True)


def csv_records(rows: Iterable[dict]) -> Iterator[str]:
    """The header line, then one CSV record (maybe spanning lines, quoted) per decision."""
    def cells():
        for row in rows:
            yield [_compact(row[f]) if name in JSON_CELLS else _plain(row[f]) for name, f in COLUMNS]
    return csv_lines(HEADER, cells())


def jsonl_records(rows: Iterable[dict]) -> Iterator[str]:
    for row in rows:
        line = json.dumps({name: _plain(row[f]) for name, f in COLUMNS}, ensure_ascii=False, separators=(",", ":"))
        # json.dumps escapes \n and \r; U+2028/2029 are line breaks to many readers (Python's splitlines too).
        yield line.replace("\u2028", "\\u2028").replace("\u2029", "\\u2029") + "\n"


ENCODERS = {"csv": csv_records, "jsonl": jsonl_records}


def count_rows(fmt: str, binary: io.BufferedIOBase) -> int:
    """Decisions in an export file, read as a stream; ValueError when it is not that format."""
    text = io.TextIOWrapper(binary, encoding="utf-8", newline="")
    try:
        if fmt == "csv":
            reader = csv.reader(text)
            header = next(reader, None)
            if header != HEADER:
                raise ValueError("the first line is not Gavel's decision export header")
            return sum(1 for _ in reader)
        if fmt == "jsonl":
            count = 0
            for number, line in enumerate(text, start=1):
                try:
                    json.loads(line)
                except json.JSONDecodeError as exc:
                    raise ValueError(f"line {number} is not JSON: {exc}") from None
                count += 1
            return count
    except UnicodeDecodeError as exc:
        raise ValueError(f"the file is not UTF-8 ({exc.reason} at byte {exc.start})") from None
    raise ValueError(f"unknown export format {fmt!r}")
