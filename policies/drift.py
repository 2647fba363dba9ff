"""Drift: what each OPA instance runs, compared with the version its environment runs.

A module changed or removed behind Gavel's back (or left behind by a publication that failed
half-way) raises a DriftAlert and Gavel re-pushes the environment's active version. A module
that drifts again and again (GAVEL_DRIFT_MAX_REPUSH re-pushes within GAVEL_DRIFT_WINDOW_MINUTES)
is no longer re-pushed: the alert is escalated to a person.
Pull environments are not checked here: OPA owns a bundle's modules and their status reports
say which revision is active.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import timedelta

import httpx
from django.conf import settings
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from . import services
from .bundles import parse_revision
from .entrypoint import entry_policy_id, entry_source
from .models import ActiveVersion, DriftAlert, Environment, OpaInstance, Policy, PolicyVersion, Publication, sha256_of
from .opa import OpaError, opa_client

log = logging.getLogger(__name__)


def active_in(environment: Environment, target_url: str) -> dict[Policy, ActiveVersion]:
    """Per policy, what the environment runs. Policies with a publication still on its way in
    the environment (or to this OPA) are left out: their instances are about to change."""
    in_flight = set(Publication.objects.filter(Q(environment=environment) | Q(target_url=target_url))
                    .exclude(status__in=Publication.FINISHED).values_list("version__policy_id", flat=True))
    active = (ActiveVersion.objects.filter(environment=environment, policy__retired_at__isnull=True)
              .exclude(policy_id__in=in_flight)
              .select_related("policy", "version__policy", "version__author", "publication__requested_by"))
    return {row.policy: row for row in active}


def expected_modules(version: PolicyVersion) -> dict[str, str]:
    """The OPA policy ids a publication loads, with the SHA-256 of their sources."""
    return {version.policy.opa_policy_id: version.sha256,
            entry_policy_id(version.policy.name): sha256_of(entry_source(version))}


def loaded_modules(instance: OpaInstance) -> dict[str, str]:
    """OPA policy id -> SHA-256 of the source the instance holds (one GET /v1/policies)."""
    with instance.client() as opa:
        return {module["id"]: sha256_of(module["raw"]) for module in opa.list_policies()}


def check_instance(environment: Environment, instance: OpaInstance) -> list[DriftAlert]:
    """Compare, alert, re-push or escalate. Raises OpaUnreachable for the task to retry.
    Safe to run twice: an open alert whose re-push is in flight, or that is escalated, waits."""
    url = instance.url or environment.target_url
    loaded = loaded_modules(instance)
    alerts = []
    with transaction.atomic():
        Environment.objects.select_for_update().get(pk=environment.pk)  # one check of an environment at a time
        for policy, active in active_in(environment, url).items():
            for resource, expected in expected_modules(active.version).items():
                alert = _compare(environment, instance, url, policy, active, resource, expected,
                                 loaded.get(resource, ""))
                if alert:
                    alerts.append(alert)
    return alerts


def _compare(environment, instance, url, policy, active, resource, expected, actual) -> DriftAlert | None:
    now = timezone.now()
    open_alerts = DriftAlert.objects.filter(target_url=url, resource=resource, resolved_at__isnull=True)
    if actual == expected:
        open_alerts.update(resolved_at=now)
        return None
    previous = open_alerts.select_related("repush").first()
    if previous and (previous.escalated or (previous.repush and not previous.repush.is_finished)):
        return None  # a person must look, or the restore is on its way
    if previous:  # restored before and drifted again, or the re-push failed: a new episode
        restored = previous.repush and previous.repush.status == Publication.Status.OK
        open_alerts.update(resolved_at=previous.repush.confirmed_at if restored else now)
    window = now - timedelta(minutes=settings.GAVEL_DRIFT_WINDOW_MINUTES)
    # A decommissioned instance's alerts do not count against the server now at its URL.
    repushed = (DriftAlert.objects.filter(target_url=url, resource=resource, detected_at__gte=window, escalated=False)
                .exclude(instance__decommissioned_at__isnull=False).count())
    alert = DriftAlert.objects.create(
        environment=environment, instance=instance if instance.pk else None, target_url=url, policy=policy,
        resource=resource, expected_hash=expected, actual_hash=actual,
        escalated=repushed >= settings.GAVEL_DRIFT_MAX_REPUSH,
    )
    if not alert.escalated:
        requested_by = active.publication.requested_by if active.publication else active.version.author
        alert.repush = services._queue(
            active.version, requested_by, url, environment=environment,
            instance=instance if instance.pk else None, repush=True,
        )
        alert.save(update_fields=["repush"])
    log.warning("drift of %s at %s (expected %s, found %s)%s", resource, url, expected[:12], actual[:12] or "none",
                ": escalated" if alert.escalated else ": re-pushing")
    transaction.on_commit(lambda: _notify_later(alert.pk))
    return alert


def _notify_later(alert_id: int) -> None:
    from .tasks import send_drift_webhook

    send_drift_webhook.delay(alert_id)


def drift_targets() -> list[tuple[Environment, OpaInstance]]:
    """Every push-mode instance in service (an environment without instances counts as one)."""
    return [(environment, instance) for environment in Environment.objects.prefetch_related("instances")
            if not environment.is_pull for instance in environment.targets()]


class WebhookFailed(Exception):
    """The drift webhook's receiver was unreachable or did not answer 2xx; the task retries."""


def webhook_payload(alert: DriftAlert) -> dict:
    return {
        "event": "drift_escalated" if alert.escalated else "drift",
        "alert": alert.pk,
        "environment": alert.environment.name,
        "instance": alert.instance.name if alert.instance else None,
        "target_url": alert.target_url,
        "policy": alert.policy.name,
        "resource": alert.resource,
        "expected_hash": alert.expected_hash,
        "actual_hash": alert.actual_hash or None,
        "detected_at": alert.detected_at.isoformat(),
        "action": ("escalated to a person: drifted too often, no longer re-pushed" if alert.escalated
                   else "re-pushing the published version"),
    }


def send_webhook(alert: DriftAlert) -> bool:
    url = settings.GAVEL_DRIFT_WEBHOOK_URL
    if not url:
        return False
    try:
        response = httpx.post(url, json=webhook_payload(alert), timeout=10)
    except httpx.TransportError as exc:
        raise WebhookFailed(f"{url}: {exc}") from exc
    if response.status_code >= 300:
        raise WebhookFailed(f"{url} answered {response.status_code}")
    return True


# --- What each environment and instance runs, for the policy page ---------------------------


@dataclass
class InstanceState:
    environment: Environment
    instance: OpaInstance
    active: ActiveVersion | None  # what the environment runs, by Gavel's record
    in_flight: Publication | None  # a publication still on its way to this instance
    state: str  # "matches", "runs another version", "differs", "missing", "unreachable", "not published", "bundle"
    loaded: str = ""  # what the instance holds, by version ("v2", "v2 with the entrypoint of v1")
    detail: str = ""

    @property
    def matches(self) -> bool:
        return self.state == "matches"


@dataclass
class EnvironmentState:
    """One environment on the policy page: its active version and since when, what is on its
    way there, its rollback target, and each instance as read back from OPA."""

    environment: Environment
    active: ActiveVersion | None
    in_flight: list[Publication]
    rollback_target: PolicyVersion | None
    instances: list[InstanceState]

    @property
    def confirmed(self) -> int:
        return sum(p.status == Publication.Status.OK for p in self.in_flight)


def environment_states(policy: Policy, timeout: float = 2.0) -> list[EnvironmentState]:
    from .review import rollback_target

    fingerprints = _fingerprints(policy)
    active = {row.environment_id: row for row in policy.active_versions.select_related("version", "publication")}
    states = []
    for environment in Environment.objects.prefetch_related("instances"):
        in_flight = _in_flight(policy, environment)
        instances = [_state(policy, environment, instance, active.get(environment.pk), in_flight, fingerprints,
                            timeout) for instance in environment.targets()]
        states.append(EnvironmentState(environment, active.get(environment.pk), in_flight,
                                       rollback_target(policy, environment) if environment.pk in active else None,
                                       instances))
    return states


def instance_states(policy: Policy, timeout: float = 2.0) -> list[InstanceState]:
    """Per instance of every environment: what is loaded (read back from OPA now, or from
    the last status report in pull environments) and whether it is what the environment runs."""
    return [instance for state in environment_states(policy, timeout) for instance in state.instances]


def _in_flight(policy: Policy, environment: Environment) -> list[Publication]:
    """The latest publication of the policy to the environment (all of its group), when it is
    not finished yet: the version on its way, with each instance's progress."""
    latest = (Publication.objects.filter(version__policy=policy, environment=environment, repush=False)
              .order_by("-requested_at", "-id").first())
    if latest is None:
        return []
    group = (Publication.objects.filter(group=latest.group).counted() if latest.group else
             Publication.objects.filter(pk=latest.pk)).select_related("version", "instance")
    group = list(group)
    return group if any(not p.is_finished for p in group) else []


def _fingerprints(policy: Policy) -> dict[str, str]:
    """SHA-256 of each version's source and of its entrypoint -> "v<n>" / "entry v<n>"."""
    known = {}
    for version in policy.versions.select_related("policy"):
        known[version.sha256] = f"v{version.number}"
        known[sha256_of(entry_source(version))] = f"entry v{version.number}"
    return known


def _state(policy, environment, instance, active, in_flight, fingerprints, timeout) -> InstanceState:
    mine = next((p for p in in_flight if (p.instance_id == instance.pk if instance.pk else not p.instance_id)), None)
    if environment.is_pull:
        names = parse_revision(instance.active_revision)
        number = names.get(policy.name)
        expected = active.version.number if active else None
        state = ("matches" if expected and number == expected else "runs another version" if number else
                 "bundle" if instance.active_revision else "not published")
        return InstanceState(environment, instance, active, mine, state, f"v{number}" if number else "",
                             f"active bundle revision {instance.active_revision or '(none reported)'}")
    url = instance.url or environment.target_url
    try:
        with opa_client(url, token=instance.token or None, timeout=timeout) as opa:
            loaded = {module["id"]: sha256_of(module["raw"]) for module in opa.list_policies()
                      if module["id"] in (policy.opa_policy_id, entry_policy_id(policy.name))}
    except OpaError as exc:
        return InstanceState(environment, instance, active, mine, "unreachable", "", str(exc))
    source, entry = loaded.get(policy.opa_policy_id), loaded.get(entry_policy_id(policy.name))
    held = _describe(source, entry, fingerprints)
    if not loaded:
        state = "missing" if active else "not published"
        return InstanceState(environment, instance, active, mine, state, "", "OPA does not hold the policy")
    if active is None:
        return InstanceState(environment, instance, active, mine, "runs another version", held,
                             f"{environment} runs no version of {policy.name}")
    expected = expected_modules(active.version)
    if loaded == expected:
        return InstanceState(environment, instance, active, mine, "matches", held, f"sha256 {source[:12]}")
    known = (fingerprints.get(source, "").startswith("v") and
             fingerprints.get(entry, "") == f"entry {fingerprints.get(source)}")
    detail = "; ".join(f"{r}: sha256 {(loaded.get(r) or 'missing')[:12]}" for r in expected
                       if loaded.get(r) != expected[r])
    return InstanceState(environment, instance, active, mine, "runs another version" if known else "differs",
                         held, detail)


def _describe(source: str | None, entry: str | None, fingerprints: dict[str, str]) -> str:
    """"v2", or the truth about a half-published or foreign instance: "v2 with the entrypoint of v1"."""
    policy = fingerprints.get(source or "", "unknown source" if source else "no policy")
    entry_name = fingerprints.get(entry or "", "an unknown entrypoint" if entry else "no entrypoint")
    if entry_name == f"entry {policy}":
        return policy
    entry_name = entry_name.replace("entry v", "the entrypoint of v")
    return f"{policy} with {entry_name}"
