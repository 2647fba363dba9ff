"""Long polls for a held action's outcome that hold no database connection, and a worker only
briefly.

GET /api/v1/approvals/<id>?wait=N waits at most GAVEL_APPROVAL_HOLD_SECONDS on the server, with
its database connection handed back first, watching a Redis counter that a decision bumps once
it is committed; still pending after that, the answer says `Retry-After` and the enforcement point
asks again. Each user may have GAVEL_APPROVAL_MAX_WAITS_PER_USER waits open at once; one more
is answered 429. When Redis is unreachable nobody waits: the answer comes at once.
"""
from __future__ import annotations

import contextlib
import functools
import logging
import time

import redis
from django.conf import settings
from django.db import connection

log = logging.getLogger(__name__)
DECIDED_KEY = "gavel:approvals:decided:{}"
WAITS_KEY = "gavel:approvals:waits:{}"
RETRY_AFTER_SECONDS = 1


class TooManyWaits(Exception):
    """The user already has as many long polls open as GAVEL_APPROVAL_MAX_WAITS_PER_USER allows."""


@functools.cache
def _client(url: str) -> redis.Redis:
    return redis.Redis.from_url(url, socket_timeout=2, socket_connect_timeout=2)


def _redis() -> redis.Redis:
    return _client(settings.REDIS_URL)


def announce(decision_id: str) -> None:
    """Wake the waits for this held action (called once its decision is committed)."""
    try:
        key = DECIDED_KEY.format(decision_id)
        _redis().pipeline().incr(key).expire(key, 3600).execute()
    except redis.RedisError:
        log.warning("Redis unreachable; waiting enforcement points learn %s on their next poll", decision_id)


@contextlib.contextmanager
def slot(user_id: int):
    """One of the user's open waits, for the length of the `with`; TooManyWaits past the cap."""
    key, client = WAITS_KEY.format(user_id), _redis()
    count = client.incr(key)
    client.expire(key, int(settings.GAVEL_APPROVAL_HOLD_SECONDS) + 60)  # a crashed worker's count fades
    try:
        if count > settings.GAVEL_APPROVAL_MAX_WAITS_PER_USER:
            raise TooManyWaits(f"at most {settings.GAVEL_APPROVAL_MAX_WAITS_PER_USER} waits at once per user")
        yield
    finally:
        client.decr(key)


def hold_seconds(requested: float) -> float:
    return max(0.0, min(requested, settings.GAVEL_APPROVAL_HOLD_SECONDS))


def wait_for_decision(decision_id: str, seconds: float) -> bool:
    """Up to `seconds` for the held action to be decided, holding no database connection."""
    if not connection.in_atomic_block:
        connection.close()  # given back for the wait; the next query opens one
    deadline = time.monotonic() + seconds
    client, key = _redis(), DECIDED_KEY.format(decision_id)
    # A change of the counter, not its presence: a key left by an earlier decision of the same id
    # (or a decision committed just before this read, found when the wait ends) wakes nobody early.
    seen = client.get(key)
    while True:
        if client.get(key) != seen:
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.2)
