"""The decision export format written out in Python, as Gavel produced it before Postgres wrote the
lines (exports/formats.py documents it): the reference the SQL-made files are compared with."""
import csv
import json

from core.csv_stream import neutralise
from exports.formats import HEADER, SCALARS

_SCALAR_NAMES = [name for name, _ in SCALARS]
_JSON_KEYS = [f',"{name}":' for name in HEADER[len(SCALARS):]]
_DATETIMES = [i for i, name in enumerate(_SCALAR_NAMES) if name in ("timestamp", "received_at")]


class _Echo:
    def write(self, value):
        return value


def _plain(row) -> list:
    row = list(row)
    for i in _DATETIMES:
        if row[i] is not None:
            row[i] = row[i].isoformat()
    return row


def csv_bytes(rows) -> bytes:
    """rows: select_rows tuples (the trailing id is ignored)."""
    writer = csv.writer(_Echo())
    out = [writer.writerow(HEADER)]
    for row in rows:
        out.append(writer.writerow([neutralise(cell) for cell in _plain(row[:len(HEADER)])]))
    return "".join(out).encode("utf-8")


def jsonl_bytes(rows) -> bytes:
    out, scalars = [], len(SCALARS)
    for row in rows:
        head = json.dumps(dict(zip(_SCALAR_NAMES, _plain(row[:scalars]))), ensure_ascii=False, separators=(",", ":"))
        line = head[:-1] + "".join(key + text for key, text in zip(_JSON_KEYS, row[scalars:len(HEADER)])) + "}"
        out.append(line.replace("\u2028", "\\u2028").replace("\u2029", "\\u2029") + "\n")
    return "".join(out).encode("utf-8")


REFERENCE = {"csv": csv_bytes, "jsonl": jsonl_bytes}
