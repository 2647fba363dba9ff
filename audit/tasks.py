from datetime import timedelta

from celery import shared_task
from django.db import OperationalError
from django.utils import timezone

from policies.opa import OpaUnreachable

from . import alerts, approvals, notifications, partitions, rollups
from .ingest import store_batch
from .models import Alert, HeldAction, LogBatch


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


@shared_task(autoretry_for=(OperationalError,), retry_backoff=60, retry_jitter=True, max_retries=5)
def drop_expired_decisions() -> list[str]:
    """Periodic: drop each week of decisions past its environment's retention, and its rollups."""
    dropped = []
    for partition in partitions.expired():
        partitions.drop(partition)
        rollups.forget(partition.environment, partition.start, partition.end)
        dropped.append(partition.table)
    return dropped


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


@shared_task
def evaluate_alerts() -> int:
    """Periodic: open or close alerts from the last minutes of decisions; returns how many changed."""
    return len(alerts.evaluate())


@shared_task(autoretry_for=(alerts.WebhookFailed,), retry_backoff=5, retry_jitter=True, max_retries=8)
def send_alert_notification(alert_id: int, kind: str) -> None:
    """POST an alert's opening or closing to GAVEL_ALERT_WEBHOOK_URL."""
    alerts.send(Alert.objects.select_related("rule__policy").get(pk=alert_id), kind)
