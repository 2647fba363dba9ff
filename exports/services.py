"""Exports of a decision search: streamed to the browser, or written to a file by a Celery job.

Either way the export is an ExportRecord whose manifest says what was asked (the filter, as
a query string and in words), what the bytes hold (rows, time range, SHA-256, size) and who
exported them when. The hash and count are taken from the bytes as they are produced, so:

- a job export's record is finished when its file is complete and renamed into place;
- a streamed export keeps no file: its record is finished when the last byte has been handed
  to the server, and marked incomplete (with no hash) when the download stops early. Its
  manifest vouches for exactly what was sent, and only once all of it was.

Rows are read with `.iterator()` over a server-side cursor and leave in ~64 KiB chunks, so an
export of any size runs in constant memory. Only decisions stored by the moment the export
was asked for (`as_of`) are included, so a job that is retried writes the same rows.
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
from pathlib import Path

from django.conf import settings
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import OperationalError, models, transaction
from django.http import QueryDict
from django.utils import timezone

from audit.filters import DecisionFilter
from core import queue
from core.models import Decision

from .formats import ENCODERS, TIMESTAMP, count_rows, select_rows
from .models import ExportRecord

log = logging.getLogger(__name__)
CHUNK_BYTES = 64 * 1024
PROGRESS_EVERY_SECONDS = 0.5
MANIFEST_VERSION = 1


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


def describe(filterset: DecisionFilter) -> str:
    """The filter in words, for people reading a manifest."""
    parts = []
    for name, field in filterset.form.fields.items():
        value = filterset.form.cleaned_data.get(name)
        if value in (None, "", []):
            continue
        if isinstance(value, models.Model):
            shown = filterset.data.get(name)
        elif hasattr(value, "isoformat"):
            shown = value.isoformat()
        else:
            shown = dict(getattr(field, "choices", ())).get(value, value)
        parts.append(f"{field.label}: {shown}")
    return "; ".join(parts) or "All decisions"


def export_rows(record: ExportRecord):
    """The rows of an export, oldest first, as the plain values the formats write."""
    decisions = _filterset(record.query).qs.filter(received_at__lte=record.as_of)
    return select_rows(decisions.order_by("timestamp", "id"))


# --- starting ------------------------------------------------------------------------------


def start_export(user, query: str, fmt: str, as_job: bool = False) -> ExportRecord:
    """Record an export of the search `query` (a query string of the audit page's filters).

    It is a job when asked, or when the search has more rows than GAVEL_EXPORT_STREAM_MAX_ROWS;
    otherwise the caller streams it (stream_export). Bad input raises ValidationError and
    records nothing.
    """
    if not user.has_perm("core.export_decision"):
        raise PermissionDenied("You may not export decisions.")
    if fmt not in ExportRecord.Format.values:
        raise ValidationError(f"Unknown format {fmt!r}: choose one of {', '.join(ExportRecord.Format.values)}.")
    filterset = _filterset(query)
    as_of = timezone.now()
    expected = filterset.qs.filter(received_at__lte=as_of).count()
    job = as_job or expected > settings.GAVEL_EXPORT_STREAM_MAX_ROWS
    record = ExportRecord(
        format=fmt, delivery=ExportRecord.Delivery.JOB if job else ExportRecord.Delivery.STREAM,
        status=ExportRecord.Status.QUEUED if job else ExportRecord.Status.RUNNING,
        query=search_params(filterset.data).urlencode(), readable_filter=describe(filterset), as_of=as_of,
        expected_rows=expected, gavel_version=gavel_version(), created_by=user,
    )
    record.save()
    if job:
        ExportRecord.objects.filter(pk=record.pk).update(file_name=record.download_name)
        record.file_name = record.download_name
        queue.after_commit("exports.tasks.run_export", record.pk)
    return record


# --- producing the bytes -------------------------------------------------------------------


class _Tally:
    """Count, time range and hash of what has been produced so far."""

    def __init__(self):
        self.sha = hashlib.sha256()
        self.rows = self.size = 0
        self.first = self.last = None

    def row(self, row: tuple) -> tuple:
        self.rows += 1
        self.first = self.first or row[TIMESTAMP]
        self.last = row[TIMESTAMP]
        return row

    def chunk(self, text_parts: list[str]) -> bytes:
        data = "".join(text_parts).encode("utf-8")
        self.sha.update(data)
        self.size += len(data)
        return data

    def finish(self, record: ExportRecord, status: str) -> None:
        done = status == ExportRecord.Status.DONE
        values = {"status": status, "row_count": self.rows, "first_timestamp": self.first,
                  "last_timestamp": self.last, "size_bytes": self.size, "finished_at": timezone.now(),
                  "sha256": self.sha.hexdigest() if done else ""}
        ExportRecord.objects.filter(pk=record.pk).update(**values)
        for name, value in values.items():
            setattr(record, name, value)


def _chunks(record: ExportRecord, tally: _Tally) -> Iterator[bytes]:
    rows = (tally.row(row) for row in export_rows(record).iterator(chunk_size=settings.GAVEL_EXPORT_FETCH_ROWS))
    parts, size = [], 0
    for text in ENCODERS[record.format](rows):
        parts.append(text)
        size += len(text)
        if size >= CHUNK_BYTES:
            yield tally.chunk(parts)
            parts, size = [], 0
    if parts or tally.size == 0:
        yield tally.chunk(parts)


def stream_export(record: ExportRecord) -> Iterator[bytes]:
    """The export's bytes for a streamed download; the record is finalised when they are all out."""
    tally, complete = _Tally(), False
    try:
        # One transaction: the cursor streams lazily from a single snapshot instead of being
        # materialised on the server first (what a cursor outside a transaction needs).
        with transaction.atomic():
            yield from _chunks(record, tally)
        complete = True
    finally:
        tally.finish(record, ExportRecord.Status.DONE if complete else ExportRecord.Status.INCOMPLETE)


def export_path(record: ExportRecord) -> Path:
    return Path(settings.GAVEL_EXPORT_DIR) / record.file_name


def _discard(partial: Path) -> None:
    with contextlib.suppress(OSError):  # the directory itself may be what failed
        partial.unlink(missing_ok=True)


def run_job(record_id: int) -> ExportRecord | None:
    """Write a job export's file and finish its record. Idempotent: a finished, expired (or deleted)
    export is left alone, and a rerun starts the file again from nothing (rows pinned by as_of)."""
    record = ExportRecord.objects.filter(pk=record_id).first()
    if record is None or not record.is_running or record.is_expired:
        return record
    path = export_path(record)
    # A file of its own per attempt: a task delivered twice (acks_late) writes two whole copies of
    # the same rows, and whichever is renamed last wins, never a mix of both.
    partial = path.with_name(f"{path.name}.{os.getpid()}-{secrets.token_hex(4)}.part")
    ExportRecord.objects.filter(pk=record.pk).update(status=ExportRecord.Status.RUNNING, row_count=0)
    tally, reported = _Tally(), time.monotonic()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        # Outside a transaction, so the progress updates below commit as they go. The cursor is
        # then WITH HOLD: Postgres materialises the result on its side, Python still reads it a
        # chunk at a time.
        with partial.open("wb") as out:
            for data in _chunks(record, tally):
                out.write(data)
                if time.monotonic() - reported >= PROGRESS_EVERY_SECONDS:
                    ExportRecord.objects.filter(pk=record.pk).update(row_count=tally.rows)
                    reported = time.monotonic()
            out.flush()
            os.fsync(out.fileno())
        os.replace(partial, path)
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
    tally.finish(record, ExportRecord.Status.DONE)
    return record


# --- the manifest, and checking a file against it ------------------------------------------


def manifest(record: ExportRecord) -> dict:
    iso = lambda value: value.isoformat() if value else None  # noqa: E731
    return {
        "gavel_export_manifest": MANIFEST_VERSION,
        "export_id": record.pk,
        "file": record.download_name,
        "format": record.format,
        "delivery": record.delivery,
        "status": record.status,
        "filter": {"query": record.query, "readable": record.readable_filter,
                   "stored_by": iso(record.as_of)},
        "row_count": record.row_count,
        "time_range": {"first": iso(record.first_timestamp), "last": iso(record.last_timestamp)},
        "sha256": record.sha256 or None,
        "size_bytes": record.size_bytes,
        "exported_by": record.created_by.get_username(),
        "exported_at": iso(record.created_at),
        "finished_at": iso(record.finished_at),
        "file_expired_at": iso(record.expired_at),  # the file was deleted then; the hash still verifies a copy
        "gavel_version": record.gavel_version,
    }


def manifest_json(record: ExportRecord) -> str:
    return json.dumps(manifest(record), indent=2, ensure_ascii=False) + "\n"


def verify(path: Path, expected: dict) -> list[str]:
    """What does not match between an export file and its manifest (nothing: it verifies)."""
    if expected.get("gavel_export_manifest") != MANIFEST_VERSION:
        return ["the manifest is not a Gavel export manifest"]
    if expected.get("status") != ExportRecord.Status.DONE or not expected.get("sha256"):
        return [f"the export did not finish (status {expected.get('status')!r}), so there is nothing to verify"]
    sha, size = hashlib.sha256(), 0
    with path.open("rb") as handle:
        while block := handle.read(1024 * 1024):
            sha.update(block)
            size += len(block)
    problems = []
    if sha.hexdigest() != expected["sha256"]:
        problems.append(f"SHA-256 is {sha.hexdigest()}, the manifest says {expected['sha256']}")
    if size != expected.get("size_bytes"):
        problems.append(f"the file has {size} bytes, the manifest says {expected.get('size_bytes')}")
    try:
        with path.open("rb") as handle:
            rows = count_rows(expected.get("format"), handle)
    except ValueError as exc:
        problems.append(f"the file cannot be read as {expected.get('format')}: {exc}")
    else:
        if rows != expected.get("row_count"):
            problems.append(f"the file has {rows} rows, the manifest says {expected.get('row_count')}")
    return problems
