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
from datetime import datetime, timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from core import webhooks
from core.digest import sha256_of
from policies import services
from policies.models import ActiveVersion, Policy, PolicyVersion, Publication
from rollout.entrypoint import entry_policy_id, entry_source

from .models import DriftAlert, Environment, OpaInstance

log = logging.getLogger(__name__)


def active_in(environment: Environment, target_url: str, read_at: datetime) -> dict[Policy, ActiveVersion]:
    """Per policy, what the environment runs. Left out: policies with a publication still on its
    way in the environment (or to this OPA), and those with one that tried or reached OPA after
    `read_at`, when the check began to read OPA: what it read of them may be out of date."""
    moving = (Publication.objects.filter(Q(environment=environment) | Q(target_url=target_url))
              .filter(~Q(status__in=Publication.FINISHED) | Q(last_attempt_at__gte=read_at)
                      | Q(confirmed_at__gte=read_at)))
    active = (ActiveVersion.objects.filter(environment=environment, policy__retired_at__isnull=True)
              .exclude(policy_id__in=moving.values("version__policy_id"))
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


@dataclass(frozen=True)
class Observation:
    """One module an instance should hold, as found there."""

    environment: Environment
    instance: OpaInstance  # unsaved for an environment without instances
    url: str
    active: ActiveVersion  # what the environment runs
    resource: str  # the OPA policy id
    expected: str  # SHA-256 of the source Gavel published
    actual: str  # SHA-256 of what the instance holds; "" when it holds nothing
    read_at: datetime  # when the check began to read the instance


def check_instance(environment: Environment, instance: OpaInstance) -> list[DriftAlert]:
    """Compare, alert, re-push or escalate. Raises OpaUnreachable for the task to retry.
    Safe to run twice: an open alert whose re-push is in flight, or that is escalated, waits."""
    read_at = timezone.now()  # before the read: a publication after it may have changed what was read
    return act_on(environment, instance, loaded_modules(instance), read_at)


def act_on(environment: Environment, instance: OpaInstance, loaded: dict[str, str],
           read_at: datetime) -> list[DriftAlert]:
    """Alert, re-push or escalate for what `instance` was found to hold (`loaded`, read from
    OPA from `read_at` on)."""
    url = instance.url or environment.target_url
    alerts = []
    with transaction.atomic():
        Environment.objects.select_for_update().get(pk=environment.pk)  # one check of an environment at a time
        for active in active_in(environment, url, read_at).values():
            for resource, expected in expected_modules(active.version).items():
                seen = Observation(environment, instance, url, active, resource, expected, loaded.get(resource, ""),
                                   read_at)
                alert = record(seen)
                if alert is None:
                    continue
                if not alert.escalated:
                    repush(alert, seen)
                log.warning("drift of %s at %s (expected %s, found %s)%s", resource, url, expected[:12],
                            seen.actual[:12] or "none", ": escalated" if alert.escalated else ": re-pushing")
                webhooks.send([settings.GAVEL_DRIFT_WEBHOOK_URL], webhook_payload(alert))
                alerts.append(alert)
    return alerts


def record(seen: Observation) -> DriftAlert | None:
    """Resolve the module's open alert when it matches again, else open a new one (escalated
    when it drifted too often lately). None: nothing new to act on."""
    now = timezone.now()
    open_alerts = DriftAlert.objects.filter(target_url=seen.url, resource=seen.resource, resolved_at__isnull=True)
    if seen.actual == seen.expected:  # an alert opened after the read may be a drift the read missed
        open_alerts.filter(detected_at__lt=seen.read_at).update(resolved_at=now)
        return None
    previous = open_alerts.select_related("repush").first()
    if previous and (previous.escalated or (previous.repush and not previous.repush.is_finished)):
        return None  # a person must look, or the restore is on its way
    if previous:  # restored before and drifted again, or the re-push failed: a new episode
        restored = previous.repush and previous.repush.status == Publication.Status.OK
        open_alerts.update(resolved_at=previous.repush.confirmed_at if restored else now)
    window = now - timedelta(minutes=settings.GAVEL_DRIFT_WINDOW_MINUTES)
    # A decommissioned instance's alerts do not count against the server now at its URL.
    repushed = (DriftAlert.objects.filter(target_url=seen.url, resource=seen.resource, detected_at__gte=window,
                                          escalated=False)
                .exclude(instance__decommissioned_at__isnull=False).count())
    return DriftAlert.objects.create(
        environment=seen.environment, instance=seen.instance if seen.instance.pk else None, target_url=seen.url,
        policy=seen.active.policy, resource=seen.resource, expected_hash=seen.expected, actual_hash=seen.actual,
        escalated=repushed >= settings.GAVEL_DRIFT_MAX_REPUSH,
    )


def repush(alert: DriftAlert, seen: Observation) -> None:
    """Queue the environment's active version to the drifted instance again."""
    active = seen.active
    requested_by = active.publication.requested_by if active.publication else active.version.author
    alert.repush = services.queue_publication(
        active.version, requested_by, seen.url, environment=seen.environment,
        instance=seen.instance if seen.instance.pk else None, repush=True,
    )
    alert.save(update_fields=["repush"])


def drift_targets() -> list[tuple[Environment, OpaInstance]]:
    """Every push-mode instance in service (an environment without instances counts as one)."""
    return [(environment, instance) for environment in Environment.objects.prefetch_related("instances")
            if not environment.is_pull for instance in environment.targets()]


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
