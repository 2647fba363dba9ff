"""Held actions run out of time: escalated at half their limit, expired (rejected) at the end."""
from django.db import transaction
from django.utils import timezone

from . import notifications
from .models import HeldAction, HeldActionEvent


def expire(held: HeldAction) -> None:
    held.status, held.decided_at = HeldAction.Status.EXPIRED, timezone.now()
    held.save(update_fields=["status", "decided_at"])
    held.log(HeldActionEvent.Kind.EXPIRED, detail="nobody decided within the time limit")
    notifications.notify(held, "decided")


@transaction.atomic
def sweep(now=None) -> tuple[int, int]:
    """Expire what timed out and escalate what has waited half its time. Returns the counts."""
    now = now or timezone.now()
    pending = HeldAction.objects.select_for_update(skip_locked=True).filter(status=HeldAction.Status.PENDING)
    expired = list(pending.filter(expires_at__lte=now))
    for held in expired:
        expire(held)
    escalated = 0
    for held in pending.filter(expires_at__gt=now, escalated_at__isnull=True):
        if held.created_at + (held.expires_at - held.created_at) / 2 <= now:
            held.escalated_at = now
            held.save(update_fields=["escalated_at"])
            held.log(HeldActionEvent.Kind.ESCALATED, detail="half its time limit has passed")
            notifications.notify(held, "escalated")
            escalated += 1
    return len(expired), escalated
