"""Drift: what each OPA instance runs, compared with what Gavel published to it.

A module changed or removed behind Gavel's back raises a DriftAlert and Gavel re-pushes the
published version. A module that drifts again and again (GAVEL_DRIFT_MAX_REPUSH re-pushes
within GAVEL_DRIFT_WINDOW_MINUTES) is no longer re-pushed: the alert is escalated to a person.
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
from django.utils import timezone

from . import services
from .entrypoint import entry_policy_id, entry_source
from .models import DriftAlert, Environment, OpaInstance, Policy, PolicyVersion, Publication, sha256_of
from .opa import OpaError, opa_client

log = logging.getLogger(__name__)


def published_to(target_url: str) -> dict[Policy, Publication]:
    """Per policy, the latest confirmed publication to the OPA at `target_url`. Policies that
    are retired, or with a publication still on its way there, are left out."""
    in_flight = set(Publication.objects.filter(target_url=target_url).exclude(status__in=Publication.FINISHED)
                    .values_list("version__policy_id", flat=True))
    latest: dict[int, Publication] = {}
    confirmed = (Publication.objects.filter(target_url=target_url, status=Publication.Status.OK,
                                            version__policy__retired_at__isnull=True)
                 .select_related("version__policy", "requested_by").order_by("confirmed_at", "pk"))
    for publication in confirmed:
        latest[publication.version.policy_id] = publication  # later rows win
    return {p.version.policy: p for policy_id, p in latest.items() if policy_id not in in_flight}


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
        for policy, publication in published_to(url).items():
            for resource, expected in expected_modules(publication.version).items():
                alert = _compare(environment, instance, url, policy, publication, resource, expected,
                                 loaded.get(resource, ""))
                if alert:
                    alerts.append(alert)
    return alerts


def _compare(environment, instance, url, policy, publication, resource, expected, actual) -> DriftAlert | None:
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
    repushed = DriftAlert.objects.filter(target_url=url, resource=resource, detected_at__gte=window,
                                         escalated=False).count()
    alert = DriftAlert.objects.create(
        environment=environment, instance=instance if instance.pk else None, target_url=url, policy=policy,
        resource=resource, expected_hash=expected, actual_hash=actual,
        escalated=repushed >= settings.GAVEL_DRIFT_MAX_REPUSH,
    )
    if not alert.escalated:
        alert.repush = services._queue(
            publication.version, publication.requested_by, url, environment=publication.environment,
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
    """Every push-mode instance (an environment without instances counts as one)."""
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


# --- What each instance runs, for the policy page ------------------------------------------


@dataclass
class InstanceState:
    environment: Environment
    instance: OpaInstance
    publication: Publication | None  # the latest confirmed publication there
    state: str  # "matches", "differs", "missing", "unreachable", "not published", "bundle"
    detail: str = ""

    @property
    def matches(self) -> bool:
        return self.state == "matches"


def instance_states(policy: Policy, timeout: float = 2.0) -> list[InstanceState]:
    """Per instance of every environment: what is loaded (read back from OPA now, or from
    the last status report in pull environments) and whether it is what Gavel published."""
    states = []
    for environment in Environment.objects.prefetch_related("instances"):
        for instance in environment.targets():
            states.append(_state(policy, environment, instance, timeout))
    return states


def _state(policy, environment, instance, timeout) -> InstanceState:
    if environment.is_pull:
        publication = (Publication.objects.filter(environment=environment, version__policy=policy,
                                                  status=Publication.Status.OK).order_by("-confirmed_at").first())
        names = set(instance.active_revision.split(","))
        expected = f"{policy.name}@{publication.version.number}" if publication else None
        state = "matches" if expected and expected in names else ("bundle" if instance.active_revision else
                                                                  "not published")
        return InstanceState(environment, instance, publication, state,
                             f"active bundle revision {instance.active_revision or '(none reported)'}")
    url = instance.url or environment.target_url
    publication = published_to(url).get(policy)
    if publication is None:
        return InstanceState(environment, instance, None, "not published")
    try:
        with opa_client(url, token=instance.token or None, timeout=timeout) as opa:
            loaded = {module["id"]: sha256_of(module["raw"]) for module in opa.list_policies()
                      if module["id"] in (policy.opa_policy_id, entry_policy_id(policy.name))}
    except OpaError as exc:
        return InstanceState(environment, instance, publication, "unreachable", str(exc))
    expected = expected_modules(publication.version)
    if not loaded:
        return InstanceState(environment, instance, publication, "missing", "OPA does not hold the policy")
    differing = [resource for resource, sha in expected.items() if loaded.get(resource) != sha]
    if differing:
        return InstanceState(environment, instance, publication, "differs",
                             "; ".join(f"{r}: sha256 {(loaded.get(r) or 'missing')[:12]}" for r in differing))
    return InstanceState(environment, instance, publication, "matches",
                         f"sha256 {loaded[policy.opa_policy_id][:12]}")
