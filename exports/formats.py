"""What an exported decision looks like in CSV and JSON Lines, and how a file's rows are counted back.

Both formats carry the same columns, read as tuples (no model instances, so rows stay cheap)
in the order the search returns them. Decision inputs come from outside: CSV cells that
a spreadsheet would run as a formula are neutralised (csv_export.neutralise), and JSON Lines
escapes every character that could end a line, so each decision is exactly one line.
"""
from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterable, Iterator

from django.db.models import F, Func, JSONField, TextField, Value
from django.db.models.functions import Cast, Coalesce

from core.csv_stream import csv_lines

# Plain columns: (column in the file, field read from the database).
SCALARS = (
    ("decision_id", "decision_id"),
    ("timestamp", "timestamp"),
    ("path", "path"),
    ("outcome", "outcome"),
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
    ("approval_ref", "approval_ref"),
    ("latency_ns", "latency_ns"),
    ("requested_by", "requested_by"),
    ("received_at", "received_at"),
)
TIMESTAMP = 1  # its position in a row


def _json_text(expression):
    return Coalesce(Cast(expression, TextField()), Value("null"), output_field=TextField())


def _array_json(field: str):
    return _json_text(Func(F(field), function="to_jsonb", output_field=JSONField()))


# Lists and documents, last: Postgres writes them as JSON text itself, so they are never decoded
# and encoded again in Python (the bulk of the work otherwise). In CSV each is one cell.
JSON_COLUMNS = (
    ("reasons", _array_json("reasons")),
    ("exception_ids", _array_json("exception_ids")),
    ("masked", _array_json("masked")),
    ("input", _json_text(F("input"))),
    ("result", _json_text(F("result"))),
)
HEADER = [name for name, _ in SCALARS] + [name for name, _ in JSON_COLUMNS]
_SCALAR_NAMES = [name for name, _ in SCALARS]
_JSON_KEYS = [f',"{name}":' for name, _ in JSON_COLUMNS]


def select_rows(decisions):
    """Rows as tuples in HEADER's order, JSON columns as text."""
    aliases = {f"{name}_as_json": expression for name, expression in JSON_COLUMNS}
    return decisions.annotate(**aliases).values_list(*[field for _, field in SCALARS], *aliases)


_DATETIMES = [i for i, (name, _) in enumerate(SCALARS) if name in ("timestamp", "received_at")]


def _plain(row: tuple) -> list:
    """Datetimes as ISO 8601 text; the rest is already text, numbers or None."""
    row = list(row)
    for i in _DATETIMES:
        if row[i] is not None:
            row[i] = row[i].isoformat()
    return row


def csv_records(rows: Iterable[tuple]) -> Iterator[str]:
    """The header line, then one CSV record (maybe spanning lines, quoted) per decision."""
    return csv_lines(HEADER, map(_plain, rows))


def jsonl_records(rows: Iterable[tuple]) -> Iterator[str]:
    scalars = len(SCALARS)
    for row in rows:
        head = json.dumps(dict(zip(_SCALAR_NAMES, _plain(row[:scalars]))), ensure_ascii=False, separators=(",", ":"))
        line = head[:-1] + "".join(key + text for key, text in zip(_JSON_KEYS, row[scalars:])) + "}"
        # JSON escapes \n and \r; U+2028/2029 are line breaks to many readers (Python's splitlines too).
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
