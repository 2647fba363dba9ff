"""How long staged batches are kept once stored.

A staged batch is OPA's upload as it arrived: every decision in it, inputs unmasked. Once its
decisions are stored it has served its purpose (the 204's promise), so it is kept only for a
while (GAVEL_LOG_BATCH_KEEP_HOURS) to look into an upload, and then deleted: otherwise a second
copy of every decision would outlive the decisions' own retention and grow without end. Failed
batches and those still waiting are never deleted here.
"""
from __future__ import annotations

from datetime import datetime, timedelta

from django.conf import settings
from django.db import connection
from django.utils import timezone

from core.models import LogBatch

# A short transaction each: uploads keep arriving while the old batches go.
CHUNK = 2000

_DELETE_CHUNK = (f"DELETE FROM {LogBatch._meta.db_table} WHERE id IN ("
                 f" SELECT id FROM {LogBatch._meta.db_table} WHERE status = %s AND received_at < %s LIMIT %s)")


def keep_until() -> datetime | None:
    """Stored batches received before this are deleted; None: kept forever."""
    hours = settings.GAVEL_LOG_BATCH_KEEP_HOURS
    return timezone.now() - timedelta(hours=hours) if hours > 0 else None


def delete_stored(chunk: int = CHUNK) -> int:
    """Delete the stored batches past their keeping time; how many went. One statement per chunk,
    without loading a body (Django's delete would read each row first to cascade)."""
    cutoff = keep_until()
    if cutoff is None:
        return 0
    deleted = 0
    while True:
        with connection.cursor() as cursor:
            cursor.execute(_DELETE_CHUNK, [LogBatch.Status.STORED, cutoff, chunk])
            went = cursor.rowcount
        deleted += went
        if went < chunk:
            return deleted
