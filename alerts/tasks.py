from celery import shared_task

from . import services as alerts


@shared_task
def evaluate_alerts() -> int:
    """Periodic: open or close alerts from the last minutes of decisions; returns how many changed."""
    return len(alerts.evaluate())
