"""Ingest's tasks: store a staged decision-log batch, send again the ones whose hand-off was lost,
and delete stored ones past their keeping time."""
from datetime import timedelta

from celery import shared_task
from django.conf import settings
from django.db import OperationalError
from django.utils import timezone

from core.models import LogBatch

from . import handoff
from .ingest import failures, staged, store_batch


# Backoff capped well under the broker's visibility timeout, so a batch retrying through a
# Postgres outage never looks lost to requeue_stalled_batches.
@shared_task(autoretry_for=(OperationalError,), retry_backoff=2, retry_backoff_max=60, retry_jitter=True,
             max_retries=None)
def store_log_batch(batch_id: int) -> int:
    """Store one staged decision-log batch; idempotent, retried while Postgres is unavailable."""
    handoff.touch(batch_id)  # this attempt is alive: restart the clock of its hand-off mark
    try:
        stored = store_batch(batch_id).stored_count
    except OperationalError:
        raise  # retried: the mark stays, the retry is pending
    except Exception as exc:
        # Not an outage: the sweep tries again later, until failures.record sets it aside.
        failures.record(batch_id, exc)
        handoff.clear(batch_id)
        raise
    handoff.clear(batch_id)
    return stored


@shared_task
def requeue_stalled_batches(older_than_seconds: int | None = None) -> int:
    """Send again the batches whose hand-off to a worker was lost (see audit/handoff.py).

    A batch still waiting in a long queue, or being retried, is left alone, so a real backlog
    does not grow with duplicate tasks.
    """
    if older_than_seconds is None:
        older_than_seconds = settings.GAVEL_INGEST_REQUEUE_AFTER_SECONDS
    cutoff = timezone.now() - timedelta(seconds=older_than_seconds)
    queued = list(
        LogBatch.objects.filter(status=LogBatch.Status.QUEUED, received_at__lt=cutoff)
        .order_by("pk").values_list("pk", flat=True)
    )
    lost = handoff.lost(queued)
    handoff.forget_stale()
    for batch_id in lost:
        handoff.send(batch_id)
    return len(lost)


@shared_task(autoretry_for=(OperationalError,), retry_backoff=60, retry_jitter=True, max_retries=5)
def delete_stored_batches() -> int:
    """Periodic: delete stored batches' staged copies past GAVEL_LOG_BATCH_KEEP_HOURS."""
    return staged.delete_stored()
