"""What an exported decision looks like in CSV and JSON Lines, and how a file's rows are counted back.

Postgres writes every line itself. The search (DecisionFilter's queryset, ordered by timestamp and id)
is wrapped in one SELECT that gives each decision's CSV cells (formulas neutralised) or its finished
JSON line, and that SELECT runs as `COPY (...) TO STDOUT (FORMAT csv)`, so COPY's own writer quotes
the cells. Python only ends each CSV record with CRLF instead of COPY's LF, escapes U+2028 and U+2029
in JSON lines, hashes the bytes and passes them on (exports/services.py), so an export runs close to
Postgres's own speed and in constant memory.

The format is the one Gavel always wrote (pinned against a Python reference by
tests/exports/test_export_format_property.py):

- both formats carry HEADER's columns in that order; timestamps are ISO 8601 in UTC as Python's
  `isoformat()` writes them (`2026-03-01T12:00:00.250000+00:00`, no fraction on a whole second);
  lists and documents are Postgres's JSON text of them;
- CSV is Excel's dialect (`,`, `"` doubled inside quotes, CRLF after each record, a cell quoted only
  when it holds `,` `"` CR or LF); a cell a spreadsheet would run as a formula (it starts with `=`
  `+` `-` `@`, tab or CR) gets a leading `'`; NULL is an empty cell;
- a JSON line is one object, the plain columns compact (`"key":value`) as Python's json.dumps
  writes them with ensure_ascii off, then the lists and documents; U+2028 and U+2029 are escaped so
  that no reader sees a line break inside a decision.
"""
from __future__ import annotations

import csv
import io
import json
from datetime import datetime

from django.db.models import F, Func, JSONField, TextField, Value
from django.db.models.functions import Cast, Coalesce

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
DATETIMES = ("timestamp", "received_at")
NUMBERS = ("version", "latency_ns")


def _json_text(expression):
    return Coalesce(Cast(expression, TextField()), Value("null"), output_field=TextField())


def _array_json(field: str):
    return _json_text(Func(F(field), function="to_jsonb", output_field=JSONField()))


# Lists and documents, last, as Postgres's JSON text of them. In CSV each is one cell.
JSON_COLUMNS = (
    ("reasons", _array_json("reasons")),
    ("exception_ids", _array_json("exception_ids")),
    ("masked", _array_json("masked")),
    ("input", _json_text(F("input"))),
    ("result", _json_text(F("result"))),
)
HEADER = [name for name, _ in SCALARS] + [name for name, _ in JSON_COLUMNS]
CSV_HEADER = (",".join(HEADER) + "\r\n").encode("utf-8")
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def select_rows(decisions):
    """Rows as tuples in HEADER's order, JSON columns as text (then the row's id, for the order)."""
    aliases = {f"{name}_as_json": expression for name, expression in JSON_COLUMNS}
    return decisions.annotate(**aliases).values_list(*[field for _, field in SCALARS], *aliases, "id")


# --- the SQL that writes the records ---------------------------------------------------------
# The columns of select_rows are c0..c23 (c23 the id). The inner query keeps its ORDER BY, which
# also keeps Postgres from pulling it up into the outer one: each column is computed once and the
# outer expressions below may name it several times at no cost. No `%` anywhere: psycopg binds the
# search's parameters into this text.

def _col(i: int) -> str:
    return f"r.c{i}"


def _iso(col: str) -> str:
    """Python's datetime.isoformat() of a UTC timestamptz: microseconds only when there are some.
    One to_char (the costliest call here) and a replace: `.000000` can only be the fraction."""
    utc = f"({col} AT TIME ZONE 'UTC')"
    return (f"CASE WHEN {col} IS NULL THEN NULL ELSE "
            f"replace(to_char({utc}, 'YYYY-MM-DD\"T\"HH24:MI:SS.US'), '.000000', '') || '+00:00' END")


def _neutral(text: str) -> str:
    """A text cell: one a spreadsheet would run as a formula gets a leading `'`; NULL is empty."""
    starts = ", ".join(f"E'{c.encode('unicode_escape').decode()}'" for c in FORMULA_STARTS)
    return f"CASE WHEN left({text}, 1) IN ({starts}) THEN '''' || {text} ELSE coalesce({text}, '') END"


def _csv_cells() -> str:
    cells = []
    for i, name in enumerate(HEADER):
        col = _col(i)
        if name in DATETIMES:
            cells.append(f"coalesce({_iso(col)}, '')")  # digits first: never a formula
        elif name in NUMBERS:
            cells.append(f"coalesce({col}::text, '')")  # whole numbers of at least 0 (bigint)
        else:
            cells.append(_neutral(col))
    return ", ".join(cells)


def _jsonl_line() -> str:
    parts = []
    for i, name in enumerate(HEADER):
        col = _col(i)
        if name in DATETIMES:
            value = f"'\"' || {_iso(col)} || '\"'"  # digits, T, : . + and -: nothing to escape
        elif i >= len(SCALARS):
            value = col  # already JSON text, never NULL
        elif name in NUMBERS:
            value = f"{col}::text"
        else:
            value = f"to_json({col})::text"
        parts += [f"'{',' if i else '{'}\"{name}\":'", f"coalesce({value}, 'null')"]
    return f"concat({', '.join(parts)}, '}}')"  # one call: a chain of || copies the line at each step


def escape_line_breaks(data: bytes) -> bytes:
    """U+2028 and U+2029 as JSON escapes, in JSON lines: they are line breaks to many readers (Python's
    splitlines too), and JSON leaves them raw. In UTF-8 these bytes can only be those characters, and
    a chunk holds whole lines, so a replace in Python costs less than one over each line in SQL."""
    return data.replace("\u2028".encode(), b"\\u2028").replace("\u2029".encode(), b"\\u2029")


# COPY's own CSV writer quotes a cell exactly when Excel's dialect does (it holds `,` `"` CR or LF)
# and, besides, when it equals COPY's NULL text. No cell here is NULL, and none can be `=`
# (formulas are neutralised, times and numbers start with a digit), so that never happens.
# A JSON line is one cell, between a quote and a delimiter character that JSON text never holds
# unescaped (U+0001, U+0002), so COPY writes it as it is. Either way each row ends with LF.
COPY_OPTIONS = {"csv": "FORMAT csv, NULL '='", "jsonl": "FORMAT csv, QUOTE E'\\x01', DELIMITER E'\\x02'"}
SELECTS = {"csv": _csv_cells(), "jsonl": _jsonl_line()}
FIRST_LINE = {"csv": CSV_HEADER, "jsonl": b""}
RECORD_END = {"csv": b"\r\n", "jsonl": b"\n"}
FINISH_CHUNK = {"csv": bytes, "jsonl": escape_line_breaks}  # bytes() of bytes is the same object


def copy_sql(fmt: str, rows_query) -> tuple[str, tuple]:
    """`COPY (SELECT <the file's cells or line> ...) TO STDOUT (FORMAT csv, ...)` for a select_rows
    queryset: each row COPY sends is one record of the file, ending with LF instead of RECORD_END."""
    inner, params = rows_query.query.sql_with_params()
    columns = ", ".join(f"c{i}" for i in range(len(HEADER) + 1))
    sql = (f"COPY (SELECT {SELECTS[fmt]} FROM ({inner}) AS r({columns}) "
           f"ORDER BY r.c{TIMESTAMP}, r.c{len(HEADER)}) TO STDOUT ({COPY_OPTIONS[fmt]})")
    return sql, params


def timestamp_of(fmt: str, record: bytes) -> datetime:
    """The decision's time, read back from one record of the file (only the first and last are)."""
    text = bytes(record).decode("utf-8")
    value = next(csv.reader([text]))[TIMESTAMP] if fmt == "csv" else json.loads(text)["timestamp"]
    return datetime.fromisoformat(value)


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
