"""Backpressure and health of decision-log ingest.

OPA keeps a batch and uploads it again until Gavel answers 2xx, so when Gavel cannot keep
up it refuses (429) or cannot store (503) with Retry-After, keeps nothing, and loses
nothing. Refusals are counted in Redis, per minute, so they are visible even while
Postgres is the thing that is down.
"""
from __future__ import annotations

import logging
import time
from datetime import timedelta

import redis
from django.conf import settings
from django.db.models import Avg, DurationField, ExpressionWrapper, F, Min, Sum
from django.utils import timezone

from core.models import LogBatch

log = logging.getLogger(__name__)
REFUSED_KEY = "gavel:ingest:refused:{status}:{minute}"
REFUSED_TOTAL_KEY = "gavel:ingest:refused-total:{status}"  # never expires: /metrics' counter
REFUSED_STATUSES = (400, 401, 413, 429, 503)


class IngestBusy(Exception):
    def __init__(self, depth: int):
        self.depth = depth
        super().__init__(f"{depth} batches are waiting to be stored (limit {settings.GAVEL_INGEST_MAX_QUEUED_BATCHES}); "
                         "retry later")


def queue_depth() -> int:
    return LogBatch.objects.filter(status=LogBatch.Status.QUEUED).count()


def check_capacity() -> None:
    """Refuse a new batch while the backlog is over the limit."""
    depth = queue_depth()
    if depth >= settings.GAVEL_INGEST_MAX_QUEUED_BATCHES:
        raise IngestBusy(depth)


def _redis():
    return redis.Redis.from_url(settings.REDIS_URL, socket_timeout=1, socket_connect_timeout=1)


def count_refusal(status: int) -> None:
    """Best effort: a refusal is counted if Redis is up; it never fails the response."""
    key = REFUSED_KEY.format(status=status, minute=int(time.time() // 60))
    try:
        with _redis() as client:
            client.pipeline().incr(key).expire(key, 3 * 3600).incr(REFUSED_TOTAL_KEY.format(status=status)).execute()
    except redis.RedisError as exc:
        log.warning("could not count a refused batch: %s", exc)


def refused_last_hour() -> dict[int, int] | None:
    """Refused uploads by HTTP status over the last 60 minutes (None when Redis is down)."""
    now = int(time.time() // 60)
    statuses = REFUSED_STATUSES
    keys = [REFUSED_KEY.format(status=s, minute=m) for s in statuses for m in range(now - 59, now + 1)]
    try:
        with _redis() as client:
            values = client.mget(keys)
    except redis.RedisError:
        return None
    counts = {status: 0 for status in statuses}
    for key, value in zip(keys, values):
        if value:
            counts[int(key.split(":")[3])] += int(value)
    return counts


def refused_totals() -> dict[int, int] | None:
    """Refused uploads by HTTP status since Redis began counting (None when Redis is down)."""
    try:
        with _redis() as client:
            values = client.mget([REFUSED_TOTAL_KEY.format(status=s) for s in REFUSED_STATUSES])
    except redis.RedisError:
        return None
    return {status: int(value or 0) for status, value in zip(REFUSED_STATUSES, values)}


def health() -> dict:
    now = timezone.now()
    queued = LogBatch.objects.filter(status=LogBatch.Status.QUEUED)
    oldest = queued.aggregate(oldest=Min("received_at"))["oldest"]
    # Read from the batch table by its index on reception, never from the decisions: the page
    # refreshes every 5 s, and counting a table of ten million decisions took 4 s.
    stored = LogBatch.objects.filter(status=LogBatch.Status.STORED)
    recent = stored.order_by("-received_at")[:200]
    delay = ExpressionWrapper(F("stored_at") - F("received_at"), output_field=DurationField())
    store_delay = LogBatch.objects.filter(pk__in=recent.values("pk")).aggregate(avg=Avg(delay))["avg"]
    hour_ago = now - timedelta(hours=1)
    return {
        "queue_depth": queued.count(),
        "queue_limit": settings.GAVEL_INGEST_MAX_QUEUED_BATCHES,
        "lag_seconds": (now - oldest).total_seconds() if oldest else 0.0,
        "store_delay_seconds": store_delay.total_seconds() if store_delay else None,
        "decisions_last_hour": stored.filter(received_at__gte=hour_ago).aggregate(n=Sum("stored_count"))["n"] or 0,
        "batches_last_hour": LogBatch.objects.filter(received_at__gte=hour_ago).count(),
        "refused_last_hour": refused_last_hour(),
        "failed": list(LogBatch.objects.filter(status=LogBatch.Status.FAILED).order_by("-received_at")
                       .defer("body_gz")[:100]),
    }
