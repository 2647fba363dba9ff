from celery import shared_task
from django.db import OperationalError

from . import retention as export_retention
from . import services as exports


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
