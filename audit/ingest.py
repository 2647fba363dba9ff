"""Decision-log ingest: validate what OPA uploads, stage it, store it as decisions.

OPA keeps a batch and retries it until Gavel answers 2xx, so the rules are simple:
refuse a bad batch whole with a message that says why, answer 204 only once the batch
is committed to Postgres, and store each decision exactly once however often it arrives.
"""
from __future__ import annotations

import json
import re
import zlib
from bisect import bisect_right
from typing import Any

from django.conf import settings
from django.db import transaction
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from core import facts, store
from core.models import Decision, LogBatch, VersionSource
from core.outcomes import derive_outcome
from policies.models import Policy, PolicyVersion, Publication
from rollout.entrypoint import entry_data_path

from . import handoff, masking


class BatchRejected(Exception):
    def __init__(self, status: int, message: str):
        self.status = status
        super().__init__(message)


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


# A JSON escape of U+0000: "\u0000" preceded by an even number of backslashes.
NUL_ESCAPE = re.compile(rb"(?<!\\)(?:\\\\)*\\u0000")


def _without_nul(value: Any) -> Any:
    """The value with every U+0000 (in keys and strings) replaced by U+FFFD."""
    if isinstance(value, str):
        return value.replace("\x00", "\ufffd")
    if isinstance(value, dict):
        return {_without_nul(k): _without_nul(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_without_nul(v) for v in value]
    return value


def parse_events(raw: bytes) -> list[dict[str, Any]]:
    """The batch as a list of decision events, or BatchRejected saying what is wrong with it."""
    try:
        events = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise BatchRejected(400, f"the batch is not valid JSON: {exc}")
    except RecursionError:
        raise BatchRejected(400, "the batch is nested too deeply to be a decision log")
    if not isinstance(events, list):
        raise BatchRejected(400, f"the batch must be a JSON array of decision events, not a {type(events).__name__}")
    for index, event in enumerate(events):
        if not isinstance(event, dict):
            raise BatchRejected(400, f"event {index} is a {type(event).__name__}, not an object")
        decision_id = event.get("decision_id")
        if not isinstance(decision_id, str) or not decision_id or len(decision_id) > 100:
            raise BatchRejected(400, f"event {index} has no decision_id (a string of at most 100 characters)")
        stamp = event.get("timestamp")
        if not isinstance(stamp, str) or parse_datetime(stamp) is None:
            raise BatchRejected(400, f"event {index} ({decision_id}) has no RFC 3339 timestamp")
        if not isinstance(event.get("path", ""), str):
            raise BatchRejected(400, f"event {index} ({decision_id}) has a path that is not a string")
    return events


def read_upload(body: bytes) -> list[dict[str, Any]]:
    """Check an upload end to end before anything is stored."""
    if len(body) > settings.GAVEL_LOG_BATCH_MAX_BYTES:
        raise BatchRejected(413, f"the batch is larger than {settings.GAVEL_LOG_BATCH_MAX_BYTES} bytes")
    if not body:
        raise BatchRejected(400, "the body is empty; expected a gzip-compressed JSON array of decision events")
    return parse_events(gunzip(body, settings.GAVEL_LOG_BATCH_MAX_INFLATED_BYTES))


def stage_batch(body_gz: bytes, events: list[dict[str, Any]], remote_addr: str | None,
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
        # Confirmed publications in time order, per (policy, environment) and per policy across all.
        self.timeline: dict[tuple[int, str | None], tuple[list, list]] = {}
        confirmed = Publication.objects.filter(status=Publication.Status.OK).select_related("version", "environment")
        for publication in confirmed.order_by("confirmed_at"):
            environment = publication.environment.name if publication.environment_id else ""
            for key in ((publication.version.policy_id, environment), (publication.version.policy_id, None)):
                times, versions = self.timeline.setdefault(key, ([], []))
                times.append(publication.confirmed_at)
                versions.append(publication.version)
        self.versions: dict[tuple[int, int], PolicyVersion | None] = {}

    def policy_for(self, path: str) -> Policy | None:
        path = path.strip("/")
        for prefix, policy in self.prefixes:  # longest first
            if path == prefix or path.startswith(prefix + "/"):
                return policy
        return None

    def reported_version(self, policy: Policy, number: int) -> PolicyVersion | None:
        key = (policy.pk, number)
        if key not in self.versions:
            self.versions[key] = PolicyVersion.objects.filter(policy=policy, number=number).first()
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
        if isinstance(result, dict) and isinstance(result.get("policy_version"), int):
            policy = self.by_name.get(result.get("policy")) or self.policy_for(path)
            version = self.reported_version(policy, result["policy_version"]) if policy else None
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
    timestamp = parse_datetime(event["timestamp"])
    result = event.get("result")
    outcome, reasons = derive_outcome(result) if "result" in event else derive_outcome()
    reasons = indexable(reasons)
    path = event.get("path", "")
    labels = event.get("labels") if isinstance(event.get("labels"), dict) else {}
    # The token the batch came with says where it was decided; labels are OPA's own claim.
    environment = batch.environment.name if batch and batch.environment_id else scalar_label(labels, "environment")
    instance = batch.instance.name if batch and batch.instance_id else (
        scalar_label(labels, "instance") or scalar_label(labels, "id"))
    policy, version, version_source = resolver.resolve(path, result, timestamp, event.get("bundles"), environment)
    entry = result if isinstance(result, dict) else {}
    mode = entry.get("effective_mode")
    applied = entry.get("exceptions_applied")
    metrics = event.get("metrics") or {}
    latency = metrics.get("timer_rego_query_eval_ns") or metrics.get("timer_server_handler_ns")
    stored_input, masked = masking.mask(event.get("input"), mask_rules or [])
    return Decision(
        **facts.extract(stored_input, reasons),
        environment=environment,
        instance=instance,
        decision_id=event["decision_id"],
        timestamp=timestamp,
        path=path,
        input=stored_input,
        masked=masked,
        result=result,
        outcome=outcome,
        reasons=reasons,
        policy=policy,
        version=version,
        version_source=version_source,
        effective_mode=mode if isinstance(mode, str) else "",
        exception_ids=[i for i in applied if isinstance(i, int)] if isinstance(applied, list) else [],
        approval_ref=str(entry.get("approval_applied") or "")[:100],
        labels=labels,
        bundles=event.get("bundles") or {},
        latency_ns=latency if isinstance(latency, int) else None,
        requested_by=str(event.get("requested_by", ""))[:200],
        batch=batch,
    )


def store_batch(batch_id: int) -> LogBatch:
    """Store a staged batch as decision rows. Safe to run twice: each decision is stored once."""
    batch = LogBatch.objects.select_related("environment", "instance").get(pk=batch_id)
    if batch.status == LogBatch.Status.STORED:
        return batch
    raw = gunzip(bytes(batch.body_gz), settings.GAVEL_LOG_BATCH_MAX_INFLATED_BYTES)
    events = json.loads(raw)
    if NUL_ESCAPE.search(raw):
        # Postgres stores no U+0000. Refusing the batch would stall every later decision of
        # that OPA behind it, so the stored copy shows U+FFFD; the batch keeps the original.
        events = _without_nul(events)
    resolver = VersionResolver()
    mask_rules = masking.rules()
    unique: dict[str, Decision] = {}
    for event in events:
        unique.setdefault(event["decision_id"], decision_from_event(event, resolver, batch, mask_rules))
    # New partitions take a lock on the parent table: create them before the long transaction.
    store.prepare(unique.values())
    with transaction.atomic():
        batch = LogBatch.objects.select_for_update().get(pk=batch_id)
        if batch.status == LogBatch.Status.STORED:
            return batch  # another worker stored it while we were reading
        fresh = store.insert(list(unique.values()))
        if mask_rules:
            batch.body_gz = b""  # the staged copy holds the unmasked inputs: it goes once stored
        batch.status = LogBatch.Status.STORED
        batch.stored_at = timezone.now()
        batch.stored_count = len(fresh)
        batch.duplicate_count = len(events) - len(fresh)
        batch.save(update_fields=["status", "stored_at", "stored_count", "duplicate_count", "body_gz"])
    return batch
