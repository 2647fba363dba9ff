"""Which staged batches have a store task on its way to a worker.

A batch is safe once it is committed to Postgres; its store task lives in Redis. The hand-off
can be lost (Redis down at upload time, a Redis that lost its last writes, a task that failed
for good), so a periodic sweep sends lost batches again. To tell "lost" from "waiting in a
long queue", each hand-off is marked in a Redis sorted set (batch id -> when its task was
sent or last started) beside the broker's own messages, and cleared once the batch is stored.
A batch with no mark, or a mark older than the broker's visibility timeout (by then Redis
itself has given an unacknowledged task to another worker), is lost.
"""
from __future__ import annotations

import functools
import logging
import time
from collections.abc import Iterable

import redis
from django.conf import settings

from core import queue

log = logging.getLogger(__name__)
PENDING_KEY = "gavel:ingest:pending"


@functools.cache
def _client(url: str) -> redis.Redis:
    return redis.Redis.from_url(url, socket_timeout=2, socket_connect_timeout=2)


def _redis() -> redis.Redis:
    return _client(settings.REDIS_URL)


def lost_after_seconds() -> float:
    """A mark this old means the task is gone: the broker would have redelivered it by now."""
    return float(settings.CELERY_BROKER_TRANSPORT_OPTIONS.get("visibility_timeout", 3600))


def mark(batch_ids: Iterable[int]) -> None:
    ids = list(batch_ids)
    if ids:
        now = time.time()
        _redis().zadd(PENDING_KEY, {str(i): now for i in ids})


def touch(batch_id: int) -> None:
    """A worker started on the batch: restart the clock of its mark (best effort, like clear)."""
    try:
        mark([batch_id])
    except redis.RedisError as exc:
        log.warning("could not mark batch %s as pending: %s", batch_id, exc)


def clear(batch_id: int) -> None:
    """Best effort: a mark left behind only makes a stored batch look pending, which the sweep ignores."""
    try:
        _redis().zrem(PENDING_KEY, str(batch_id))
    except redis.RedisError as exc:
        log.warning("could not clear the hand-off mark of batch %s: %s", batch_id, exc)


def send(batch_id: int) -> None:
    """Enqueue the store task, then mark it. Marking second means losing Redis writes can drop a
    mark (the sweep then sends a harmless second task) but never keep a mark for a lost task."""
    queue.now("audit.tasks.store_log_batch", batch_id)
    mark([batch_id])


def lost(batch_ids: list[int]) -> list[int]:
    """The batches among `batch_ids` (all still queued in Postgres) whose task is not pending."""
    if not batch_ids:
        return []
    scores = _redis().zmscore(PENDING_KEY, [str(i) for i in batch_ids])
    stale = time.time() - lost_after_seconds()
    return [i for i, score in zip(batch_ids, scores) if score is None or score < stale]


def forget_stale() -> None:
    """Drop marks too old to mean anything (batches stored or deleted while Redis missed the clear)."""
    _redis().zremrangebyscore(PENDING_KEY, 0, time.time() - lost_after_seconds())
