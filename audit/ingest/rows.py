"""The worker side of ingest: a staged batch's events, held to the contract, stored as decisions."""
from __future__ import annotations

from typing import Any

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from core import facts, store
from core.models import Decision, LogBatch
from core.outcomes import derive_outcome

from .. import masking
from . import contract
from .upload import gunzip
from .versions import VersionResolver


# Postgres cannot index a reason longer than about 2.7 kB, and a batch it cannot store would
# stall that OPA's logs. Policies may echo input into reasons, so the column keeps the first
# 500 characters of the first 50 reasons; the stored result keeps them whole.
REASON_CHARS, REASON_COUNT = 500, 50


def indexable(reasons: list[str]) -> list[str]:
    return [r if len(r) <= REASON_CHARS else r[: REASON_CHARS - 1] + "…" for r in reasons[:REASON_COUNT]]


def scalar_label(labels: dict, name: str) -> str:
    value = labels.get(name)
    return value[:100] if isinstance(value, str) else ""


def decision_from_event(event: dict[str, Any], resolver: VersionResolver, batch: LogBatch | None,
                        mask_rules: list | None = None) -> Decision:
    """The row for one event, every field normalised as the contract (contract.py) says."""
    timestamp = contract.timestamp_of(event)
    result = contract.storable(event.get("result"))
    outcome, reasons = derive_outcome(result) if "result" in event else derive_outcome()
    reasons = indexable([contract.text(reason) for reason in reasons])
    path = contract.path_of(event)
    labels = contract.labels_of(event)
    # The token the batch came with says where it was decided; labels are OPA's own claim.
    environment = batch.environment.name if batch and batch.environment_id else scalar_label(labels, "environment")
    instance = batch.instance.name if batch and batch.instance_id else (
        scalar_label(labels, "instance") or scalar_label(labels, "id"))
    bundles = contract.storable(event.get("bundles"))
    policy, version, version_source = resolver.resolve(path, result, timestamp, bundles, environment)
    entry = result if isinstance(result, dict) else {}
    stored_input, masked = masking.mask(contract.storable(event.get("input")), mask_rules or [])
    return Decision.new(
        **facts.extract(stored_input, reasons),
        environment=environment,
        instance=instance,
        decision_id=contract.decision_id_of(event),
        timestamp=timestamp,
        path=path,
        input=stored_input,
        masked=masked,
        result=result,
        outcome=outcome,
        reasons=reasons,
        policy=policy,
        version_id=version.pk if version else None,
        version_source=version_source,
        effective_mode=contract.short_text(entry.get("effective_mode"), 10),
        exception_ids=contract.exception_ids_of(entry),
        approval_ref=contract.short_text(entry.get("approval_applied"), 100),
        labels=labels,
        bundles=bundles if isinstance(bundles, dict) else {},
        latency_ns=contract.latency_of(event),
        requested_by=contract.short_text(event.get("requested_by"), 200),
        batch_id=batch.pk if batch else None,
    )


def unique_events(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The batch without its repeated events (same id, timestamp and environment label),
    dropped before any row is built: 200,000 copies of one event cost one row's work."""
    seen, unique = set(), []
    for event in events:
        key = contract.identity(event)
        if key not in seen:
            seen.add(key)
            unique.append(event)
    return unique


def store_batch(batch_id: int) -> LogBatch:
    """Store a staged batch as decision rows. Safe to run twice: each decision is stored once."""
    batch = LogBatch.objects.select_related("environment", "instance").get(pk=batch_id)
    if batch.status == LogBatch.Status.STORED:
        return batch
    events = contract.loads(gunzip(bytes(batch.body_gz), settings.GAVEL_LOG_BATCH_MAX_INFLATED_BYTES))
    resolver = VersionResolver(earliest=lambda: min(map(contract.timestamp_of, events)))
    mask_rules = masking.rules()
    rows: dict[tuple, Decision] = {}
    for event in unique_events(events):
        decision = decision_from_event(event, resolver, batch, mask_rules)
        # Two labels can name one environment the token overrides: still one row per stored key.
        rows.setdefault((decision.decision_id, decision.environment, decision.timestamp), decision)
    # New partitions take a lock on the parent table: create them before the long transaction.
    store.prepare(rows.values())
    with transaction.atomic():
        batch = LogBatch.objects.select_for_update().get(pk=batch_id)
        if batch.status == LogBatch.Status.STORED:
            return batch  # another worker stored it while we were reading
        fresh = store.insert(list(rows.values()), prepared=True)
        changed = ["status", "stored_at", "stored_count", "duplicate_count"]
        if mask_rules:
            batch.body_gz = b""  # the staged copy holds the unmasked inputs: it goes once stored
            changed.append("body_gz")  # only then: saving it unchanged sends the whole body back
        batch.status = LogBatch.Status.STORED
        batch.stored_at = timezone.now()
        batch.stored_count = len(fresh)
        batch.duplicate_count = len(events) - len(fresh)
        batch.save(update_fields=changed)
    return batch
