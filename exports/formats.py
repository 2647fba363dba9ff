"""What an exported decision looks like in CSV and JSON Lines, and how a file's rows are counted back.

Postgres writes every line itself. The search (DecisionFilter's queryset, ordered by timestamp and id)
is wrapped in one SELECT that formats each decision as its finished CSV record or JSON line, and
that SELECT runs as `COPY (...) TO STDOUT (FORMAT binary)`: Python only takes the lines out of
COPY's framing, hashes them and passes them on (exports/services.py), so an export runs close to
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
from collections.abc import Iterable, Iterator

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


# --- the SQL that writes the lines ----------------------------------------------------------
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


def _csv_cell(text: str, json: bool = False) -> str:
    """One CSV cell of a text value: formulas neutralised, quoted only when needed (Excel dialect).
    Postgres's JSON text escapes every control character, so a JSON cell (the largest ones) is not
    scanned for CR and LF; a JSON number may still start with `-`."""
    starts = ", ".join(f"E'{c.encode('unicode_escape').decode()}'" for c in FORMULA_STARTS)
    neutral = f"CASE WHEN left({text}, 1) IN ({starts}) THEN '''' || {text} ELSE {text} END"
    # strpos, not a regular expression: four scans of a short text cost less than one regex match
    specials = ("','", "'\"'") if json else ("','", "'\"'", "E'\\r'", "E'\\n'")
    special = " + ".join(f"strpos({text}, {c})" for c in specials)
    return (f"CASE WHEN {text} IS NULL THEN '' WHEN {special} > 0 "
            f"THEN '\"' || replace({neutral}, '\"', '\"\"') || '\"' ELSE {neutral} END")


def _csv_line() -> str:
    cells = []
    for i, name in enumerate(HEADER):
        col = _col(i)
        if name in DATETIMES:
            cells.append(f"coalesce({_iso(col)}, '')")  # digits first: never a formula, never quoted
        elif name in NUMBERS:
            cells.append(f"coalesce({col}::text, '')")  # whole numbers of at least 0 (bigint)
        else:
            cells.append(_csv_cell(col, json=i >= len(SCALARS)))
    return "concat_ws(',', " + ", ".join(cells) + ") || E'\\r\\n'"


def _jsonl_line() -> str:
    parts = []
    for i, name in enumerate(HEADER):
        col = _col(i)
        if name in DATETIMES:
            value = f"to_json({_iso(col)})::text"
        elif i >= len(SCALARS):
            value = col  # already JSON text, never NULL
        elif name in NUMBERS:
            value = f"{col}::text"
        else:
            value = f"to_json({col})::text"
        parts.append(f"'{',' if i else '{'}\"{name}\":' || coalesce({value}, 'null')")
    line = " || ".join(parts) + " || '}'"
    # JSON escapes LF and CR; U+2028/2029 are line breaks to many readers (Python's splitlines too).
    return f"replace(replace({line}, chr(8232), '\\u2028'), chr(8233), '\\u2029') || E'\\n'"


LINES = {"csv": _csv_line(), "jsonl": _jsonl_line()}
FIRST_LINE = {"csv": CSV_HEADER, "jsonl": b""}


def copy_sql(fmt: str, rows_query) -> tuple[str, tuple]:
    """`COPY (SELECT line, timestamp ...) TO STDOUT (FORMAT binary)` for a select_rows queryset."""
    inner, params = rows_query.query.sql_with_params()
    columns = ", ".join(f"c{i}" for i in range(len(HEADER) + 1))
    sql = (f"COPY (SELECT {LINES[fmt]}, r.c{TIMESTAMP} FROM ({inner}) AS r({columns}) "
           f"ORDER BY r.c{TIMESTAMP}, r.c{len(HEADER)}) TO STDOUT (FORMAT binary)")
    return sql, params


class CopyFrames:
    """The (line, timestamp) tuples out of COPY's binary stream, whatever the blocks' boundaries.

    Postgres sends one block per row in practice; this does not rely on it. Each tuple is two
    fields: the line (UTF-8 text, never NULL) and the decision's timestamp (int64 microseconds
    since 2000-01-01 UTC), which only the first and last rows need decoded.
    """

    SIGNATURE = b"PGCOPY\n\xff\r\n\x00"

    def __init__(self):
        self._buffer = b""
        self._header = False
        self.ended = False

    def whole(self, block) -> bool:
        """Whether `block` is exactly one tuple, as Postgres sends them: its line is block[6:-12]."""
        size = len(block)
        return (self._header and not self._buffer and size >= 18 and block[0] == 0 and block[1] == 2
                and int.from_bytes(block[2:6], "big") == size - 18)

    def feed(self, block: bytes) -> Iterator[tuple[bytes, bytes]]:
        data = self._buffer + block if self._buffer else bytes(block)
        pos, end = 0, len(data)
        if not self._header:
            if end < 19:
                self._buffer = data
                return
            if data[:11] != self.SIGNATURE:
                raise ValueError("not a binary COPY stream")
            pos = 19 + int.from_bytes(data[15:19], "big")
            self._header = True
        while pos + 2 <= end:
            if data[pos:pos + 2] == b"\xff\xff":
                self.ended = True
                pos += 2
                break
            # two fields: 2-byte count, then each field as a 4-byte length and its bytes
            if pos + 6 > end:
                break
            size = int.from_bytes(data[pos + 2:pos + 6], "big")
            after_line = pos + 6 + size
            if after_line + 4 + 8 > end:
                break
            yield data[pos + 6:after_line], data[after_line + 4:after_line + 12]
            pos = after_line + 12
        self._buffer = data[pos:]


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


def lines_of(frames: Iterable[tuple[bytes, bytes]]) -> Iterator[bytes]:
    return (line for line, _ in frames)
