"""Webhook notifications for the approval queue: new, escalated and decided held actions go to
GAVEL_APPROVAL_WEBHOOK_URL, and a decision also to the enforcement point's callback."""
from django.conf import settings

from core import webhooks

from .models import HeldAction
from .wording import describe


def payload(held: HeldAction, kind: str) -> dict:
    return {
        "event": kind,
        "decision_id": held.decision_id,
        "status": held.status,
        "request": describe(held.input),
        "reasons": held.reasons,
        "requester": held.requester,
        "policy": held.policy.name if held.policy else None,
        "approvals": held.approvals,
        "approvals_required": held.approvals_required,
        "expires_at": held.expires_at.isoformat(),
        "valid_until": held.valid_until.isoformat() if held.valid_until else None,
    }


def targets(held: HeldAction, kind: str) -> list[str]:
    urls = [settings.GAVEL_APPROVAL_WEBHOOK_URL]
    if kind == "decided":
        urls.append(held.callback_url)
    return [url for url in urls if url]


def notify(held: HeldAction, kind: str) -> int:
    """Queue the webhooks for this step, sent once the transaction commits."""
    return webhooks.send(targets(held, kind), payload(held, kind))
