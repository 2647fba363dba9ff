"""Webhook notifications for the approval queue: new, escalated and decided held actions."""
import httpx
from django.conf import settings

from .approvals import describe
from .models import HeldAction


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


class WebhookFailed(Exception):
    """The receiver was unreachable or did not answer 2xx; the task retries."""


def send(held: HeldAction, kind: str) -> int:
    """POST to the console's webhook, and to the enforcement point's for decisions."""
    targets = [settings.GAVEL_APPROVAL_WEBHOOK_URL] if settings.GAVEL_APPROVAL_WEBHOOK_URL else []
    if kind == "decided" and held.callback_url:
        targets.append(held.callback_url)
    body = payload(held, kind)
    for url in targets:
        try:
            response = httpx.post(url, json=body, timeout=10)
        except httpx.TransportError as exc:
            raise WebhookFailed(f"{url}: {exc}") from exc
        if response.status_code >= 300:
            raise WebhookFailed(f"{url} answered {response.status_code}")
    return len(targets)
