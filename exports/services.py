"""Exports of a decision search: streamed to the browser, or written by a Celery job; either way one
file under GAVEL_EXPORT_DIR, downloadable (again) as an archive with its signed manifest while kept.

Either way the export is an ExportRecord whose manifest says what was asked (the filter, as
a query string and in words, with its time window frozen at `as_of`), what the bytes hold (rows,
time range, SHA-256, size) and who exported them when; it is signed (exports/signing.py). The hash
and count are taken from the bytes as they are produced, so:

- a job export's record is finished when its file is complete and renamed into place;
- a streamed export sends the archive as its file is written: the data entry while the rows are
  produced, then the signed manifest, once the record is finished. A download that stops early
  leaves the record incomplete (no hash) and no file.

Postgres writes every line (exports/formats.py: `COPY (SELECT ...) TO STDOUT`); Python hashes the
bytes and passes them on in ~64 KiB chunks, so an export of any size runs in constant memory.
Only decisions stored by the moment the export was asked for (`as_of`; from the audit page, the
moment it counted them) are included, so the count shown, the rows written and a retried job agree.
"""
from __future__ import annotations

import contextlib
import hashlib
import importlib.metadata
import json
import logging
import os
import secrets
import time
from collections.abc import Iterator
from datetime import datetime, timedelta
from datetime import timezone as dt_timezone
from pathlib import Path

import psycopg
from django.conf import settings
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import OperationalError, connection, connections, transaction
from django.http import QueryDict
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from audit.filters import DecisionFilter
from core import queue, replica
from core.models import Decision

from . import archive, signing
from .formats import FINISH_CHUNK, FIRST_LINE, RECORD_END, copy_sql, select_rows, timestamp_of
from .models import ExportRecord

log = logging.getLogger(__name__)
CHUNK_BYTES = 64 * 1024
PROGRESS_EVERY_SECONDS = 0.5
MANIFEST_VERSION = 2  # 2: signed, with the frozen time window; 1 (unsigned) still reads


def gavel_version() -> str:
    try:
        return importlib.metadata.version("gavel")
    except importlib.metadata.PackageNotFoundError:
        return "unknown"


# --- the search ----------------------------------------------------------------------------


def search_params(params) -> QueryDict:
    """Only DecisionFilter's own fields, without empty values: the canonical form of a search."""
    clean = QueryDict(mutable=True)
    for name in DecisionFilter.base_filters:
        values = [v for v in params.getlist(name) if v.strip()]
        if values:
            clean.setlist(name, values)
    return clean


def _filterset(query: str) -> DecisionFilter:
    params = search_params(QueryDict(query))
    if any("\x00" in value for values in params.lists() for value in values[1]):
        raise ValidationError("The search contains a NUL character, which no decision can match.")
    filterset = DecisionFilter(params, queryset=Decision.objects.all())
    if not filterset.is_valid():
        errors = "; ".join(f"{field}: {' '.join(messages)}" for field, messages in filterset.errors.items())
        raise ValidationError(f"Fix the filters: {errors}")
    return filterset


def _utc(value: datetime) -> str:
    return value.astimezone(dt_timezone.utc).isoformat().replace("+00:00", "Z")


def window(query: str, as_of: datetime) -> dict:
    """The time window an export holds: the search's from/until, and the moment it was frozen."""
    fields, params = DecisionFilter.base_filters, QueryDict(query)
    since, until = (fields[name].field.clean(params.get(name)) for name in ("since", "until"))
    return {"from": _utc(since) if since else None, "until": _utc(until) if until else None,
            "stored_by": _utc(as_of), "until_after_start": bool(until and until > as_of)}


def describe(filterset: DecisionFilter, as_of: datetime) -> str:
    """The filter in words, with DecisionFilter's own labels, and the moment the export froze it."""
    frozen = window(search_params(filterset.data).urlencode(), as_of)
    parts = []
    for shown in filterset.active():
        text = f"{shown['label']}: {shown['value']}"
        if shown["name"] == "until" and frozen["until_after_start"]:
            text += " (later than the export's start)"
        parts.append(text)
    parts.append(f"decisions Gavel had stored by {frozen['stored_by']}")
    return "; ".join(parts)


def _decisions(record: ExportRecord):
    return _filterset(record.query).qs.filter(received_at__lte=record.as_of)


def _as_of(value) -> datetime:
    """When the export's rows are frozen: now, or the moment a page counted them (not in the future)."""
    now = timezone.now()
    if value in (None, ""):
        return now
    moment = value if isinstance(value, datetime) else parse_datetime(str(value).strip())
    if moment is None or timezone.is_naive(moment):
        raise ValidationError(f"as_of {value!r} is not a date and time with a zone (ISO 8601).")
    if moment > now + timedelta(seconds=5):
        raise ValidationError(f"as_of {value} is in the future: an export holds decisions already stored.")
    return min(moment, now)


# --- starting ------------------------------------------------------------------------------


def start_export(user, query: str, fmt: str, as_job: bool = False, as_of=None) -> ExportRecord:
    """Record an export of the search `query` (a query string of the audit page's filters), of the
    decisions stored by `as_of` (default now; the audit page sends the moment it counted).

    It is a job when asked, or when the search has more rows than GAVEL_EXPORT_STREAM_MAX_ROWS;
    otherwise the caller streams it (stream_export). Bad input raises ValidationError and
    records nothing.
    """
    if not user.has_perm("core.export_decision"):
        raise PermissionDenied("You may not export decisions.")
    if fmt not in ExportRecord.Format.values:
        raise ValidationError(f"Unknown format {fmt!r}: choose one of {', '.join(ExportRecord.Format.values)}.")
    filterset = _filterset(query)
    as_of = _as_of(as_of)
    expected = filterset.qs.filter(received_at__lte=as_of).count()
    job = as_job or expected > settings.GAVEL_EXPORT_STREAM_MAX_ROWS
    record = ExportRecord(
        format=fmt, delivery=ExportRecord.Delivery.JOB if job else ExportRecord.Delivery.STREAM,
        status=ExportRecord.Status.QUEUED if job else ExportRecord.Status.RUNNING,
        query=search_params(filterset.data).urlencode(), readable_filter=describe(filterset, as_of), as_of=as_of,
        expected_rows=expected, gavel_version=gavel_version(), created_by=user,
    )
    record.save()
    ExportRecord.objects.filter(pk=record.pk).update(file_name=record.download_name)
    record.file_name = record.download_name
    if job:
        queue.after_commit("exports.tasks.run_export", record.pk)
    return record


# --- producing the bytes -------------------------------------------------------------------


class _Tally:
    """Count, first and last record and hash of what has been produced so far, written to `out`."""

    def __init__(self, out):
        self.sha = hashlib.sha256()
        self.out = out
        self.rows = self.size = 0
        self.first = self.last = None

    def chunk(self, data: bytes) -> bytes:
        self.sha.update(data)
        self.size += len(data)
        self.out.write(data)
        return data

    def finish(self, record: ExportRecord, status: str) -> None:
        done = status == ExportRecord.Status.DONE
        first, last = (timestamp_of(record.format, line) if line else None for line in (self.first, self.last))
        values = {"status": status, "row_count": self.rows, "first_timestamp": first, "last_timestamp": last,
                  "size_bytes": self.size, "finished_at": timezone.now(),
                  "sha256": self.sha.hexdigest() if done else ""}
        ExportRecord.objects.filter(pk=record.pk).update(**values)
        for name, value in values.items():
            setattr(record, name, value)


def _chunks(record: ExportRecord, tally: _Tally) -> Iterator[bytes]:
    """The file's bytes in ~64 KiB chunks: Postgres's records out of COPY, hashed and written by tally."""
    # The read replica when it has replayed everything stored by the export's moment (core/replica.py).
    alias = replica.reads(as_of=record.as_of).alias
    log.info("export %s reads the %s database", record.pk, alias)
    rows = select_rows(_decisions(record).using(alias).order_by("timestamp", "id"))
    sql, params = copy_sql(record.format, rows)
    first, end, finish = FIRST_LINE[record.format], RECORD_END[record.format], FINISH_CHUNK[record.format]
    parts, size = ([first] if first else []), len(first)
    # psycopg's own cursor: Django's DEBUG wrapper has a copy() that takes no parameters.
    with connections[alias].cursor() as cursor, cursor.cursor.copy(sql, params) as copy:
        # libpq hands COPY's data over one whole row at a time, and each row ends with LF.
        for row in copy:
            if row[-1] != 10:
                raise OperationalError("COPY sent a row that does not end with a line feed")
            record_bytes = row[:-1]
            parts += (record_bytes, end)
            size += len(row) - 1 + len(end)
            tally.rows += 1
            if tally.first is None:
                tally.first = record_bytes
            tally.last = record_bytes
            if size >= CHUNK_BYTES:
                yield tally.chunk(finish(b"".join(parts)))
                parts, size = [], 0
    if parts or tally.size == 0:
        yield tally.chunk(finish(b"".join(parts)))


def export_path(record: ExportRecord) -> Path:
    return Path(settings.GAVEL_EXPORT_DIR) / record.file_name


def _partial(record: ExportRecord) -> Path:
    # A file of its own per attempt: a task delivered twice (acks_late) writes two whole copies of
    # the same rows, and whichever is renamed last wins, never a mix of both.
    path = export_path(record)
    path.parent.mkdir(parents=True, exist_ok=True)
    return path.with_name(f"{path.name}.{os.getpid()}-{secrets.token_hex(4)}.part")


def _discard(partial: Path | None) -> None:
    with contextlib.suppress(OSError):  # the directory itself may be what failed
        if partial:
            partial.unlink(missing_ok=True)


def _keep(out, partial: Path, record: ExportRecord) -> None:
    out.flush()
    os.fsync(out.fileno())
    out.close()
    os.replace(partial, export_path(record))


def manifest_bytes(record: ExportRecord) -> bytes:
    return manifest_json(record).encode("utf-8")


def stream_export(record: ExportRecord) -> Iterator[bytes]:
    """The archive a streamed download sends (its file written meanwhile); the record is finished,
    and the signed manifest added, once the last row is out. Stopped early: incomplete, no file."""
    partial = out = None
    complete = False
    tally = _Tally(None)

    def data() -> Iterator[bytes]:
        nonlocal complete
        # One transaction (a savepoint inside one): a download cut short rolls the COPY back cleanly.
        with transaction.atomic():
            yield from _chunks(record, tally)
        _keep(out, partial, record)
        tally.finish(record, ExportRecord.Status.DONE)
        complete = True

    try:
        partial = _partial(record)
        out = tally.out = partial.open("wb")
        chunks = data()
        try:
            yield from archive.stream(record.download_name, chunks, record.manifest_name,
                                      lambda: manifest_bytes(record), record.created_at)
        finally:
            chunks.close()  # a download cut short: end the COPY before the record is written
    finally:
        if not complete:
            if out:
                out.close()
            _discard(partial)
            tally.finish(record, ExportRecord.Status.INCOMPLETE)


class _Progress:
    """Rows written so far, on the job's page: committed on a connection of its own every half
    second, since the job's own connection is busy with the COPY."""

    def __init__(self, record: ExportRecord):
        self.record, self.reported, self.conn = record, time.monotonic(), None

    def report(self, rows: int) -> None:
        if time.monotonic() - self.reported < PROGRESS_EVERY_SECONDS:
            return
        try:
            if self.conn is None:
                self.conn = psycopg.connect(**connection.get_connection_params(), autocommit=True)
            self.conn.execute("UPDATE audit_exportrecord SET row_count = %s WHERE id = %s", [rows, self.record.pk])
        except psycopg.Error as exc:  # progress is a courtesy: the export goes on without it
            log.warning("export %s: cannot report progress: %s", self.record.pk, exc)
        self.reported = time.monotonic()

    def close(self) -> None:
        if self.conn is not None:
            self.conn.close()


def run_job(record_id: int) -> ExportRecord | None:
    """Write a job export's file and finish its record. Idempotent: a finished, expired (or deleted)
    export is left alone, and a rerun starts the file again from nothing (rows pinned by as_of)."""
    record = ExportRecord.objects.filter(pk=record_id).first()
    if record is None or not record.is_running or record.is_expired:
        return record
    ExportRecord.objects.filter(pk=record.pk).update(status=ExportRecord.Status.RUNNING, row_count=0)
    partial, progress = None, _Progress(record)
    try:
        partial = _partial(record)
        with partial.open("wb") as out:
            tally = _Tally(out)
            for _ in _chunks(record, tally):
                progress.report(tally.rows)
            _keep(out, partial, record)
    except OperationalError:
        _discard(partial)
        raise  # Postgres went away: the task retries from the start
    except Exception as exc:
        log.exception("export %s failed", record.pk)
        _discard(partial)
        ExportRecord.objects.filter(pk=record.pk).update(status=ExportRecord.Status.FAILED, error=str(exc)[:2000],
                                                         finished_at=timezone.now())
        record.refresh_from_db()
        return record
    finally:
        progress.close()
    tally.finish(record, ExportRecord.Status.DONE)
    return record


def archive_of(record: ExportRecord, handle) -> Iterator[bytes]:
    """A kept file (opened by retention.open_file) as the archive with its signed manifest."""
    try:
        size = os.fstat(handle.fileno()).st_size
        yield from archive.stream(record.download_name, iter(lambda: handle.read(CHUNK_BYTES), b""),
                                  record.manifest_name, lambda: manifest_bytes(record), record.created_at, size)
    finally:
        handle.close()


# --- the manifest --------------------------------------------------------------------------


def manifest(record: ExportRecord) -> dict:
    """What the export holds and who made it, signed with Gavel's export key (exports/signing.py)."""
    iso = lambda value: value.isoformat() if value else None  # noqa: E731
    return signing.sign({
        "gavel_export_manifest": MANIFEST_VERSION,
        "export_id": record.pk,
        "file": record.download_name,
        "format": record.format,
        "delivery": record.delivery,
        "status": record.status,
        "filter": {"query": record.query, "readable": record.readable_filter, "stored_by": iso(record.as_of)},
        "window": window(record.query, record.as_of),
        "expected_rows": record.expected_rows,
        "row_count": record.row_count,
        "time_range": {"first": iso(record.first_timestamp), "last": iso(record.last_timestamp)},
        "sha256": record.sha256 or None,
        "size_bytes": record.size_bytes,
        "exported_by": record.created_by.get_username(),
        "exported_at": iso(record.created_at),
        "finished_at": iso(record.finished_at),
        "file_expired_at": iso(record.expired_at),  # the file was deleted then; the hash still verifies a copy
        "gavel_version": record.gavel_version,
    })


def manifest_json(record: ExportRecord) -> str:
    return json.dumps(manifest(record), indent=2, ensure_ascii=False) + "\n"
