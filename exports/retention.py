"""Export files expire. A job's file holds decision inputs (personal data), so it is kept
GAVEL_EXPORT_RETENTION_DAYS and then deleted; its record stays, with the manifest and hash,
marked expired, so anyone who kept a copy can still check it (exports/verify_gavel_export.py).

- The file is deleted before the record is marked: a record that says "expired" has no file left
  behind it, and a run that stopped in between is finished by the next (a missing file is fine).
- A download already under way reads the file it opened, which deleting (unlink) does not take
  away, so it completes; a download asked for afterwards gets 410 Gone.
- Whoever made an export may delete its file early. Someone else's takes exports.delete_exportrecord,
  which no role holds (console/roles.py): audit.export_decision lets an auditor make exports, not
  undo other people's.
"""
from __future__ import annotations

import logging
import re
from datetime import datetime, timedelta
from pathlib import Path
from typing import BinaryIO

import pghistory
from django.conf import settings
from django.core.exceptions import PermissionDenied, ValidationError
from django.db.models import Q, QuerySet
from django.utils import timezone

from .models import ExportRecord
from .services import export_path

log = logging.getLogger(__name__)
# The activity log shows changes made under this context as "Gavel (retention)" (activity/entries.py).
AUTOMATION = "retention"
FINAL_NAME = re.compile(r"^gavel-decisions-(\d+)\.(csv|jsonl)$")
DIED_UNFINISHED = "The job never finished; retention deleted what it left."


class ExportGone(Exception):
    """The export's file was deleted: a download answers 410 Gone with this message."""


class NoFile(Exception):
    """The export never had a file to download (streamed, still running, or failed)."""


def cutoff() -> datetime | None:
    """Files finished before this are past retention; None when files are kept forever."""
    days = settings.GAVEL_EXPORT_RETENTION_DAYS
    return timezone.now() - timedelta(days=days) if days > 0 else None


def due(before: datetime) -> QuerySet[ExportRecord]:
    """Exports whose file is past retention: finished before `before`, or started before it and
    never finished (their job died, perhaps leaving a partial file). A failed export kept no file."""
    # Streamed exports keep their file too (file_name set); those from before that kept none.
    kept = ExportRecord.objects.filter(expired_at__isnull=True).exclude(file_name="")
    return kept.filter(
        Q(status=ExportRecord.Status.DONE, finished_at__lt=before)
        | Q(status__in=(ExportRecord.Status.QUEUED, ExportRecord.Status.RUNNING), created_at__lt=before))


def _files_of(record: ExportRecord) -> list[Path]:
    if not record.file_name:  # without a name, export_path would be the directory itself
        return []
    path = export_path(record)
    # run_job's partial files are "<name>.<pid>-<random>.part".
    return [path, *path.parent.glob(f"{path.name}.*.part")]


def expire(record: ExportRecord, by=None) -> bool:
    """Delete the record's file (and any partial ones), then mark it expired. False when it already
    was. An OSError leaves the record as it was, for the next run to try again."""
    for path in _files_of(record):
        path.unlink(missing_ok=True)
    now = timezone.now()
    values = {"expired_at": now, "expired_by": by}
    if record.is_running:
        values.update(status=ExportRecord.Status.FAILED, finished_at=now, error=DIED_UNFINISHED)
    marked = ExportRecord.objects.filter(pk=record.pk, expired_at__isnull=True).update(**values)
    record.refresh_from_db()
    return bool(marked)


def sweep_directory(before: datetime) -> list[str]:
    """Export files no live record accounts for, last written before `before`: partial files of jobs
    that died, and a file whose record is expired or gone. Anything else in the directory is left."""
    directory = Path(settings.GAVEL_EXPORT_DIR)
    if not directory.is_dir():
        return []
    removed = []
    for path in directory.glob("gavel-decisions-*"):
        final = FINAL_NAME.match(path.name)
        if not final and not path.name.endswith(".part"):
            continue
        if final and ExportRecord.objects.filter(pk=int(final[1]), expired_at__isnull=True).exists():
            continue
        try:
            if not path.is_file() or path.stat().st_mtime >= before.timestamp():
                continue
            path.unlink()
        except FileNotFoundError:
            continue  # deleted meanwhile: what we wanted
        except OSError as exc:
            log.error("export retention: cannot delete %s: %s", path, exc)
            continue
        removed.append(path.name)
    return removed


def expire_old_exports() -> dict[str, list]:
    """Delete every export file past retention; idempotent (a second run finds nothing to do)."""
    before = cutoff()
    if before is None:
        return {"expired": [], "swept": []}
    expired = []
    # No user makes this change: the activity log shows it as Gavel's retention.
    with pghistory.context(automation=AUTOMATION):
        for record in due(before).order_by("pk"):
            try:
                if expire(record):
                    expired.append(record.pk)
            except OSError as exc:  # one file that cannot go must not keep the others
                log.error("export retention: cannot delete the file of export %s: %s", record.pk, exc)
    swept = sweep_directory(before)
    if expired or swept:
        log.info("export retention: expired exports %s, deleted stray files %s", expired, swept)
    return {"expired": expired, "swept": swept}


# --- by hand, and downloading ---------------------------------------------------------------


def may_delete(user, record: ExportRecord) -> bool:
    if user.has_perm("exports.delete_exportrecord"):
        return True
    return user.has_perm("core.export_decision") and record.created_by_id == user.pk


def delete_file(record: ExportRecord, user) -> ExportRecord:
    """Delete an export's file before retention would; its record stays. Twice is harmless."""
    if not may_delete(user, record):
        raise PermissionDenied("Only whoever made an export may delete its file early.")
    if record.is_expired:
        return record
    if not record.file_name or record.status != ExportRecord.Status.DONE:
        raise ValidationError("Only a finished export has a file to delete.")
    try:
        expire(record, by=user)
    except OSError as exc:
        raise ValidationError(f"The file could not be deleted ({exc.strerror}); nothing was changed.") from None
    return record


def gone_message(record: ExportRecord) -> str:
    if not record.is_expired:  # deleted by hand on the server, or retention is halfway through it
        return f"The file of export {record.pk} is no longer on the server."
    if record.expired_by_id:
        how = f"early by {record.expired_by.get_username()}"
    else:
        how = f"by Gavel's retention (export files are kept {settings.GAVEL_EXPORT_RETENTION_DAYS} days)"
    return (f"Export {record.pk} expired on {record.expired_at:%Y-%m-%d}: its file was deleted {how}. "
            "Its record and signed manifest remain, so a copy kept elsewhere can still be checked with "
            "verify_gavel_export.py.")


def open_file(record: ExportRecord) -> BinaryIO:
    """A finished job's file, opened for download. Once open, deleting it cannot cut the download short."""
    if record.is_expired:
        raise ExportGone(gone_message(record))
    if record.status != ExportRecord.Status.DONE or not record.file_name:
        raise NoFile("This export has no file to download.")
    try:
        return export_path(record).open("rb")
    except FileNotFoundError:
        record.refresh_from_db()
        raise ExportGone(gone_message(record)) from None
