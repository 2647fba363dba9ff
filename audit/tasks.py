from datetime import timedelta

from celery import shared_task
from django.conf import settings
from django.db import OperationalError
from django.utils import timezone

from policies.opa import OpaUnreachable

from . import alerts, approvals, export_retention, exports, handoff, notifications, partitions, rollups
from .ingest import store_batch
from .models import Alert, HeldAction, LogBatch


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
    except Exception:
        handoff.clear(batch_id)  # failed for good this time: let the sweep send it again later
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


@shared_task(autoretry_for=(OperationalError,), retry_backoff=2, retry_backoff_max=300, retry_jitter=True,
             max_retries=None)
def run_export(record_id: int) -> int:
    """Write one export job's file; idempotent, retried from the start while Postgres is unavailable."""
    record = exports.run_job(record_id)
    return record.row_count if record else 0


@shared_task(autoretry_for=(OperationalError,), retry_backoff=60, retry_jitter=True, max_retries=5)
def expire_export_files() -> dict[str, list]:
    """Periodic: delete export files past GAVEL_EXPORT_RETENTION_DAYS; their records stay, marked expired."""
    return export_retention.expire_old_exports()
