from datetime import timedelta

from celery import shared_task
from django.db import OperationalError
from django.utils import timezone

from policies.opa import OpaUnreachable

from . import approvals, exports, notifications
from .ingest import store_batch
from .models import HeldAction, LogBatch


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


@shared_task(autoretry_for=(OpaUnreachable,), retry_backoff=2, retry_jitter=True, max_retries=10)
def push_approvals() -> int:
    """Replace data.gavel_approvals in OPA with the approvals a retry may use now."""
    return approvals.push_approvals()


@shared_task
def sweep_held_actions() -> tuple[int, int]:
    """Periodic: held actions past their time limit expire; those past half of it escalate.
    Approvals past their validity leave OPA's data on the same beat."""
    counts = approvals.sweep()
    push_approvals.delay()
    return counts


@shared_task(autoretry_for=(notifications.WebhookFailed,), retry_backoff=5, retry_jitter=True, max_retries=8)
def send_approval_notification(held_action_id: int, kind: str) -> int:
    """POST what happened to the notification webhook (and the enforcement point's, when decided)."""
    return notifications.send(HeldAction.objects.get(pk=held_action_id), kind)


@shared_task(autoretry_for=(OperationalError,), retry_backoff=2, retry_backoff_max=300, retry_jitter=True,
             max_retries=None)
def run_export(record_id: int) -> int:
    """Write one export job's file; idempotent, retried from the start while Postgres is unavailable."""
    record = exports.run_job(record_id)
    return record.row_count if record else 0
