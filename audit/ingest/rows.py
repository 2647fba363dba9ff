"""The worker side of ingest: a staged batch's events, held to the contract, stored as decisions."""
from __future__ import annotations

from bisect import bisect_right
from functools import cached_property
from typing import Any

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from core import facts, store
from core.models import Decision, LogBatch, VersionSource
from core.outcomes import derive_outcome
from policies.models import Policy, PolicyVersion, Publication
from rollout.entrypoint import entry_data_path

from .. import masking
from . import contract
from .upload import gunzip


class VersionResolver:
    """Finds the policy and version behind a decision.

    Decisions made through Gavel's entrypoint report their policy and version in the result.
    Others (a policy queried directly) get the version whose publication to the decision's
    environment was the latest confirmed one at decision time.
    """

    def __init__(self):
        prefixes = []
        for policy in Policy.objects.all():
            prefixes += [(policy.data_path, policy), (entry_data_path(policy.name).rsplit("/", 1)[0], policy)]
        self.prefixes = sorted(prefixes, key=lambda item: len(item[0]), reverse=True)
        self.by_name = {policy.name: policy for _, policy in prefixes}
        self.versions: dict[tuple[int, int], PolicyVersion | None] = {}

    @cached_property
    def timeline(self) -> dict[tuple[int, str | None], tuple[list, list]]:
        """Confirmed publications in time order, per (policy, environment) and per policy across all.
        Read when a decision first needs it: those made through Gavel's entrypoint report their
        version. There is one per OPA instance per publish, so they are read as plain values, and each
        version once without its source and tests (900 publications took 82 ms a batch with them)."""
        timeline: dict[tuple[int, str | None], tuple[list, list]] = {}
        confirmed = list(Publication.objects.filter(status=Publication.Status.OK).order_by("confirmed_at")
                         .values_list("version_id", "version__policy_id", "environment__name", "confirmed_at"))
        published = PolicyVersion.objects.only("policy_id", "number").in_bulk({row[0] for row in confirmed})
        for version_id, policy_id, environment, confirmed_at in confirmed:
            for key in ((policy_id, environment or ""), (policy_id, None)):
                times, versions = timeline.setdefault(key, ([], []))
                times.append(confirmed_at)
                versions.append(published[version_id])
        return timeline

    def policy_for(self, path: str) -> Policy | None:
        path = path.strip("/")
        for prefix, policy in self.prefixes:  # longest first
            if path == prefix or path.startswith(prefix + "/"):
                return policy
        return None

    def reported_version(self, policy: Policy, number: int) -> PolicyVersion | None:
        key = (policy.pk, number)
        if key not in self.versions:
            self.versions[key] = PolicyVersion.objects.only("policy_id", "number").filter(
                policy=policy, number=number).first()
        return self.versions[key]

    def bundle_version(self, policy: Policy, bundles: Any) -> PolicyVersion | None:
        """The version a bundle revision names ("agent_gateway@3,platform_changes@1")."""
        for bundle in bundles.values() if isinstance(bundles, dict) else ():
            revision = bundle.get("revision") if isinstance(bundle, dict) else None
            for part in str(revision or "").split(","):
                name, _, number = part.strip().partition("@")
                if name == policy.name and number.isascii() and number.isdigit() and len(number) < 10:
                    return self.reported_version(policy, int(number))
        return None

    def resolve(self, path: str, result: Any, when, bundles: Any = None,
                environment: str | None = None) -> tuple[Policy | None, PolicyVersion | None, str]:
        if bundles and (policy := self.policy_for(path)) and (version := self.bundle_version(policy, bundles)):
            return policy, version, VersionSource.BUNDLE
        number, name = (result.get("policy_version"), result.get("policy")) if isinstance(result, dict) else (None, None)
        if isinstance(number, int) and 0 < number < 2**31:  # a version number Postgres can look up
            policy = (self.by_name.get(name) if isinstance(name, str) else None) or self.policy_for(path)
            version = self.reported_version(policy, number) if policy else None
            if version:
                return policy, version, VersionSource.REPORTED
        policy = self.policy_for(path)
        if policy is None:
            return None, None, VersionSource.UNKNOWN
        # The environment's own publications when Gavel knows them, else any environment's.
        times, versions = self.timeline.get((policy.pk, environment)) or self.timeline.get((policy.pk, None), ([], []))
        index = bisect_right(times, when)
        if index:
            return policy, versions[index - 1], VersionSource.PUBLICATION
        return policy, None, VersionSource.UNKNOWN


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
    resolver = VersionResolver()
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
