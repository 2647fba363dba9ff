"""The decision core's tasks: webhook delivery for every feature, and retention, which drops
whole weeks of decisions."""
from celery import shared_task
from django.db import OperationalError

from . import partitions, rollups, webhooks


@shared_task(autoretry_for=(webhooks.WebhookFailed,), retry_backoff=5, retry_jitter=True, max_retries=8)
def deliver_webhook(url: str, payload: dict) -> None:
    """POST one event to one receiver (core/webhooks.py); retried while it is down."""
    webhooks.post(url, payload)


@shared_task(autoretry_for=(OperationalError,), retry_backoff=60, retry_jitter=True, max_retries=5)
def drop_expired_decisions() -> list[str]:
    """Periodic: drop each week of decisions past its environment's retention, and its rollups."""
    dropped = []
    for partition in partitions.expired():
        partitions.drop(partition)
        rollups.forget(partition.environment, partition.start, partition.end)
        dropped.append(partition.table)
    return dropped
