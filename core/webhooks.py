"""Webhooks: Gavel tells other systems what happened (a held action, an alert, drift) by
POSTing JSON to a URL someone configured. This is the one sender: `send` queues one delivery
per URL once the transaction commits, and the task (core.tasks.deliver_webhook) retries a receiver that is down or answers
anything but 2xx, with backoff and jitter, then gives up (the event stays in the console)."""
from __future__ import annotations

import httpx

from . import queue


class WebhookFailed(Exception):
    """The receiver was unreachable or did not answer 2xx; the delivery is retried."""


def post(url: str, payload: dict) -> None:
    try:
        response = httpx.post(url, json=payload, timeout=10)
    except httpx.TransportError as exc:
        raise WebhookFailed(f"{url}: {exc}") from exc
    if response.status_code >= 300:
        raise WebhookFailed(f"{url} answered {response.status_code}")


def send(urls: list[str], payload: dict) -> int:
    """Queue `payload` for each configured URL (blank ones skipped) after commit; returns how many."""
    targets = [url for url in urls if url]
    for url in targets:
        queue.after_commit("core.tasks.deliver_webhook", url, payload)
    return len(targets)
