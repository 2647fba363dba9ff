"""A 204 is a promise: a staged batch the worker still cannot store after a few attempts is
marked failed with the reason, stops counting toward the queue limit, raises an alert, and
waits on the ingest page to be downloaded or retried. Nothing accepted is dropped silently."""
from __future__ import annotations

import logging

from django.conf import settings
from django.db import transaction

from core import webhooks
from core.models import LogBatch

from .. import handoff

log = logging.getLogger(__name__)
MAX_ATTEMPTS = 3


def record(batch_id: int, error: Exception) -> LogBatch | None:
    """Count a failed attempt; the last allowed one marks the batch failed and alerts."""
    with transaction.atomic():
        batch = LogBatch.objects.select_for_update().filter(pk=batch_id, status=LogBatch.Status.QUEUED).first()
        if batch is None:
            return None
        batch.attempts += 1
        batch.failure = f"{type(error).__name__}: {error}"[:2000]
        if batch.attempts >= MAX_ATTEMPTS:
            batch.status = LogBatch.Status.FAILED
            log.error("decision-log batch %s failed %s times and is set aside: %s", batch.pk, batch.attempts,
                      batch.failure)
            webhooks.send([settings.GAVEL_ALERT_WEBHOOK_URL], {
                "event": "ingest.batch_failed", "batch": batch.pk, "events": batch.event_count,
                "received_at": batch.received_at.isoformat(), "reason": batch.failure})
        batch.save(update_fields=["attempts", "failure", "status"])
    return batch


def failed():
    return LogBatch.objects.filter(status=LogBatch.Status.FAILED).order_by("-received_at")


def retry(batch: LogBatch) -> None:
    """Queue a failed batch again with fresh attempts (after a fix, say)."""
    LogBatch.objects.filter(pk=batch.pk, status=LogBatch.Status.FAILED).update(
        status=LogBatch.Status.QUEUED, attempts=0)
    transaction.on_commit(lambda: handoff.send(batch.pk), robust=True)
