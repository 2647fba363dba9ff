from datetime import timedelta

from celery import shared_task
from django.db import OperationalError
from django.utils import timezone

from .ingest import store_batch
from .models import LogBatch


@shared_task(autoretry_for=(OperationalError,), retry_backoff=2, retry_jitter=True, max_retries=None)
def store_log_batch(batch_id: int) -> int:
    """Store one staged decision-log batch; idempotent, retried while Postgres is unavailable."""
    return store_batch(batch_id).stored_count


@shared_task
def requeue_stalled_batches(older_than_seconds: int = 60) -> int:
    """Hand batches back to the worker whose first hand-off was lost (Redis down at upload time)."""
    cutoff = timezone.now() - timedelta(seconds=older_than_seconds)
    stalled = list(
        LogBatch.objects.filter(status=LogBatch.Status.QUEUED, received_at__lt=cutoff).values_list("pk", flat=True)
    )
    for batch_id in stalled:
        store_log_batch.delay(batch_id)
    return len(stalled)
