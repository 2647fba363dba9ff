"""The upload side of ingest: unpack what OPA sends, hold it to the contract, stage it.

OPA keeps a batch and retries it until Gavel answers 2xx, so the rules are simple:
refuse a bad batch whole with a message that says why, answer 204 only once the batch
is committed to Postgres, and store each decision exactly once however often it arrives.
"""
from __future__ import annotations

import zlib
from typing import Any

from django.conf import settings
from django.db import transaction

from core.models import LogBatch

from .. import handoff
from . import contract
from .contract import BatchRejected


def gunzip(body: bytes, limit: int) -> bytes:
    """Inflate a gzip body, refusing to produce more than `limit` bytes (gzip bombs)."""
    inflater = zlib.decompressobj(16 + zlib.MAX_WBITS)
    try:
        raw = inflater.decompress(body, limit + 1)
    except zlib.error as exc:
        raise BatchRejected(400, f"the body is not gzip-compressed JSON ({exc}); OPA sends Content-Encoding: gzip")
    if len(raw) > limit:
        raise BatchRejected(413, f"the batch inflates to more than {limit} bytes")
    if not inflater.eof:
        raise BatchRejected(400, "the gzip body is truncated")
    return raw


def parse_events(raw: bytes) -> list[Any]:
    """The batch as a list of decision events, or BatchRejected saying what is wrong with it."""
    try:
        events = contract.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise BatchRejected(400, f"the batch is not valid JSON: {exc}")
    except RecursionError:
        raise BatchRejected(400, "the batch is nested too deeply to be a decision log")
    if not isinstance(events, list):
        raise BatchRejected(400, f"the batch must be a JSON array of decision events, not a {type(events).__name__}")
    cap = settings.GAVEL_INGEST_MAX_EVENTS_PER_BATCH
    if len(events) > cap:
        raise BatchRejected(413, f"the batch holds {len(events)} events, more than the cap of {cap} per batch "
                                 "(GAVEL_INGEST_MAX_EVENTS_PER_BATCH); lower OPA's upload_size_limit_bytes")
    for index, event in enumerate(events):
        try:
            contract.check(event)
        except ValueError as exc:
            decision_id = event.get("decision_id") if isinstance(event, dict) else None
            named = f" ({contract.text(decision_id)[:100]})" if isinstance(decision_id, str) else ""
            raise BatchRejected(400, f"event {index}{named} {exc}")
    return events


def read_upload(body: bytes) -> list[Any]:
    """Check an upload end to end before anything is stored."""
    if len(body) > settings.GAVEL_LOG_BATCH_MAX_BYTES:
        raise BatchRejected(413, f"the batch is larger than {settings.GAVEL_LOG_BATCH_MAX_BYTES} bytes")
    if not body:
        raise BatchRejected(400, "the body is empty; expected a gzip-compressed JSON array of decision events")
    return parse_events(gunzip(body, settings.GAVEL_LOG_BATCH_MAX_INFLATED_BYTES))


def stage_batch(body_gz: bytes, events: list[Any], remote_addr: str | None,
                environment=None, instance=None) -> LogBatch:
    """Commit the batch to Postgres and hand it to the worker. `environment` and `instance`
    are where its token says it came from (None for the bootstrap token).

    If the hand-off to Redis fails, the batch is still safe in Postgres and the periodic
    requeue picks it up, so the upload is acknowledged either way.
    """
    with transaction.atomic():
        batch = LogBatch.objects.create(body_gz=body_gz, event_count=len(events), remote_addr=remote_addr,
                                        environment=environment, instance=instance)
        transaction.on_commit(lambda: handoff.send(batch.pk), robust=True)
    return batch
