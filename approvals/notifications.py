"""Webhook notifications for the approval queue: new, escalated and decided held actions go to
GAVEL_APPROVAL_WEBHOOK_URL, and a decision also to the enforcement point's callback.

A callback is POSTed by the worker, from inside the network Gavel runs in, so an enforcement
point could otherwise make Gavel call OPA's own API or a metadata service. Only hosts and
networks listed in GAVEL_CALLBACK_ALLOWED ("hooks.example.com,10.20.0.0/16") are called; a
network matches only a URL that names an IP address, never a host name, whose address could
change between this check and the call.
"""
from __future__ import annotations

import ipaddress
from urllib.parse import urlsplit

from django.conf import settings
from django.db import transaction

from core import webhooks

from . import waiting
from .models import HeldAction
from .wording import describe


class CallbackRefused(ValueError):
    """The URL is not one Gavel may call back."""


def allowed_entries() -> tuple[set[str], list[ipaddress.IPv4Network | ipaddress.IPv6Network]]:
    hosts, networks = set(), []
    for entry in (e.strip() for e in settings.GAVEL_CALLBACK_ALLOWED.split(",")):
        if not entry:
            continue
        try:
            networks.append(ipaddress.ip_network(entry, strict=False))
        except ValueError:
            hosts.add(entry.lower().rstrip("."))
    return hosts, networks


def check_callback(url: str) -> str:
    """`url` when Gavel may call it back; raises CallbackRefused with the reason otherwise."""
    try:
        parts = urlsplit(url)
        host = (parts.hostname or "").lower().rstrip(".")
        parts.port  # noqa: B018 -- a malformed port raises here
    except ValueError as exc:
        raise CallbackRefused(f"not a URL: {exc}") from exc
    if parts.scheme not in ("http", "https") or not host:
        raise CallbackRefused("a callback must be an http or https URL with a host")
    if parts.username or parts.password:
        raise CallbackRefused("a callback URL may not carry credentials")
    hosts, networks = allowed_entries()
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        address = None
    if host in hosts or (address is not None and any(address in network for network in networks)):
        return url
    raise CallbackRefused(f"{host} is not in GAVEL_CALLBACK_ALLOWED, so Gavel will not call it")


def is_allowed(url: str) -> bool:
    try:
        check_callback(url)
    except CallbackRefused:
        return False
    return True


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
    if kind == "decided" and held.callback_url and is_allowed(held.callback_url):
        urls.append(held.callback_url)  # checked again: the allow-list may have shrunk since
    return [url for url in urls if url]


def notify(held: HeldAction, kind: str) -> int:
    """Queue the webhooks for this step, sent once the transaction commits; a decision also
    wakes the enforcement points waiting for it."""
    if kind == "decided":
        decision_id = held.decision_id
        transaction.on_commit(lambda: waiting.announce(decision_id))
    urls = targets(held, kind)
    return webhooks.send(urls, payload(held, kind)) if urls else 0  # the payload reads the votes: only when sent
