"""Two-person publishing, rollback and retirement. Pages and the API call these functions.

A version reaches an environment's OPA instances only when someone asks for it with a reason
and a second person, who neither wrote the version nor asked, approves. Rollback needs no
second person: it restores, in one environment, a version that was already reviewed and ran
there. Retirement removes the policy from every environment. Every step is a PublishEvent.
"""
from __future__ import annotations

from datetime import datetime, timedelta

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from core.opa.client import OpaUnreachable, opa_client
from fleet.models import Environment
from rollout.entrypoint import entry_policy_id
from rollout.services import push_runtime_after_commit

from .models import ActiveVersion, Policy, PolicyVersion, Publication, PublishEvent, PublishRequest
from .services import PublishRefused, ensure_publishable, request_publication

PUBLISH_PERMISSION = "policies.publish_policyversion"
RETIRE_PERMISSION = "policies.retire_policy"
ROLLBACK_PERMISSION = "policies.rollback_policy"  # security admins (console/roles.py)


def _require(user, permission: str, what: str) -> None:
    if not user.has_perm(permission):
        raise PublishRefused(f"{user} may not {what}")


def _reason(text: str, what: str) -> str:
    text = (text or "").strip()
    if not text:
        raise PublishRefused(f"say why you {what}")
    return text


@transaction.atomic
def request_publish(version: PolicyVersion, *, requested_by, reason: str,
                    environment: Environment | None = None) -> PublishRequest:
    """Ask for `version` to be published to `environment` (default: GAVEL_ENVIRONMENT's); it
    waits for a second person's approval."""
    _require(requested_by, PUBLISH_PERMISSION, "request publication")
    reason = _reason(reason, "want it published")
    ensure_publishable(version)
    environment = environment or Environment.objects.default()
    if version.publish_requests.filter(status=PublishRequest.Status.PENDING, environment=environment).exists():
        raise PublishRefused(f"version {version.number} already has a request for {environment} waiting for approval")
    request = PublishRequest.objects.create(version=version, requested_by=requested_by, reason=reason,
                                            environment=environment)
    PublishEvent.objects.create(policy=version.policy, version=version, action=PublishEvent.Action.REQUESTED,
                                actor=requested_by, reason=reason, request=request, environment=environment)
    return request


def _pending(request: PublishRequest) -> PublishRequest:
    # Locked so two approvers clicking at once cannot publish twice.
    request = PublishRequest.objects.select_for_update().select_related("version__policy").get(pk=request.pk)
    if request.status != PublishRequest.Status.PENDING:
        raise PublishRefused(f"this request is already {request.get_status_display().lower()}")
    return request


def may_approve(request: PublishRequest, user) -> bool:
    return (user.has_perm(PUBLISH_PERMISSION) and user.pk != request.version.author_id
            and user.pk != request.requested_by_id)


@transaction.atomic
def approve(request: PublishRequest, *, approved_by, note: str = "") -> PublishRequest:
    """A second person approves: the version is pushed to OPA (once this transaction commits)."""
    _require(approved_by, PUBLISH_PERMISSION, "approve publication")
    request = _pending(request)
    if approved_by.pk == request.version.author_id:
        raise PublishRefused("the author of a version cannot approve its publication; ask someone else")
    if approved_by.pk == request.requested_by_id:
        raise PublishRefused("you requested this publication; someone else must approve it")
    request.publication = request_publication(request.version, requested_by=approved_by,
                                              environment=request.environment or Environment.objects.default())
    request.status, request.decided_by, request.decided_at = PublishRequest.Status.APPROVED, approved_by, timezone.now()
    request.decision_note = (note or "").strip()
    request.save()
    PublishEvent.objects.create(policy=request.version.policy, version=request.version,
                                action=PublishEvent.Action.APPROVED, actor=approved_by, reason=request.decision_note,
                                request=request, publication=request.publication,
                                environment=request.publication.environment)
    return request


@transaction.atomic
def reject(request: PublishRequest, *, rejected_by, reason: str) -> PublishRequest:
    """Turn a request down. The requester may withdraw their own request this way too."""
    _require(rejected_by, PUBLISH_PERMISSION, "reject publication")
    reason = _reason(reason, "reject it")
    request = _pending(request)
    request.status, request.decided_by, request.decided_at = PublishRequest.Status.REJECTED, rejected_by, timezone.now()
    request.decision_note = reason
    request.save()
    PublishEvent.objects.create(policy=request.version.policy, version=request.version,
                                action=PublishEvent.Action.REJECTED, actor=rejected_by, reason=reason, request=request,
                                environment=request.environment)
    return request


def rollback_target(policy: Policy, environment: Environment | None = None) -> PolicyVersion | None:
    """The version `environment` ran before its active one: the latest other version that
    became active there (every instance confirmed it)."""
    environment = environment or Environment.objects.default()
    active = policy.active_in(environment)
    if active is None:
        return None
    earlier = (PublishEvent.objects.filter(policy=policy, environment=environment,
                                           action=PublishEvent.Action.PUBLISHED)
               .exclude(version_id=active.version_id).order_by("-created_at", "-id").select_related("version").first())
    return earlier.version if earlier else None


@transaction.atomic
def rollback(policy: Policy, *, rolled_back_by, reason: str, environment: Environment | None = None) -> Publication:
    """Re-publish, in `environment` (default: GAVEL_ENVIRONMENT's), the version it ran before
    its active one, in one step. No second person is needed: the version was reviewed and ran
    there before. Other environments are not touched."""
    _require(rolled_back_by, ROLLBACK_PERMISSION, "roll back")
    reason = _reason(reason, "roll back")
    environment = environment or Environment.objects.default()
    policy = Policy.objects.select_for_update().get(pk=policy.pk)
    target = rollback_target(policy, environment)
    if target is None:
        raise PublishRefused(f"{policy.name} has no earlier published version to roll back to in {environment}")
    publication = request_publication(target, requested_by=rolled_back_by, environment=environment)
    PublishEvent.objects.create(policy=policy, version=target, action=PublishEvent.Action.ROLLED_BACK,
                                actor=rolled_back_by, reason=reason, publication=publication, environment=environment)
    return publication


def last_decided_at(policy: Policy) -> datetime | None:
    return policy.decisions.order_by("-timestamp").values_list("timestamp", flat=True).first()


def retire_blocker(policy: Policy, now: datetime | None = None) -> str | None:
    """Why the policy cannot be retired now, or None when it can."""
    if policy.retired_at:
        return f"{policy.name} is already retired"
    days = settings.GAVEL_RETIRE_AFTER_DAYS
    last = last_decided_at(policy)
    if last is not None and last > (now or timezone.now()) - timedelta(days=days):
        return (f"{policy.name} decided at {last:%Y-%m-%d %H:%M} UTC; it can be retired after {days} days "
                f"without decisions")
    return None


def _holders(policy: Policy) -> list:
    """OPA clients for every push instance in service where the policy was ever published (not
    the decommissioned ones). Pull environments are not here: their bundles leave out retired
    policies, and OPA drops what its bundle lost."""
    targets, urls = [], set()
    pushed = Environment.objects.filter(publications__version__policy=policy).distinct().prefetch_related("instances")
    for environment in pushed:
        if not environment.is_pull:
            for target in environment.targets():
                targets.append(target.client)
                urls.add(target.url or environment.target_url)
    # Publications from before they named an environment went to an OPA by its URL only.
    for url in (Publication.objects.filter(version__policy=policy, environment__isnull=True)
                .values_list("target_url", flat=True).distinct()):
        if url not in urls:
            targets.append(lambda url=url: opa_client(url))
    return targets


def retire(policy: Policy, *, retired_by, reason: str) -> Policy:
    """Remove the policy and its entrypoint from every environment and mark it retired. Only
    once it has made no decisions for GAVEL_RETIRE_AFTER_DAYS days, so nothing still relies on it."""
    _require(retired_by, RETIRE_PERMISSION, "retire policies")
    reason = _reason(reason, "retire it")
    with transaction.atomic():
        policy = Policy.objects.select_for_update().get(pk=policy.pk)
        blocker = retire_blocker(policy)
        if blocker:
            raise PublishRefused(blocker)
        # OPA first, and every instance answering before any is changed: if one is unreachable
        # (OpaUnreachable propagates), nothing is removed anywhere and nothing is marked retired.
        holders = _holders(policy)
        for client in holders:
            try:
                with client() as opa:
                    opa.list_policy_ids()
            except OpaUnreachable as exc:
                raise OpaUnreachable(f"{exc}; if that OPA is gone for good, decommission it on the environments "
                                     "page, then retire") from exc
        for client in holders:
            with client() as opa:
                opa.delete_policy(entry_policy_id(policy.name))
                opa.delete_policy(policy.opa_policy_id)
        Publication.objects.filter(version__policy=policy).exclude(status__in=Publication.FINISHED).update(
            status=Publication.Status.FAILED, detail="Cancelled: the policy was retired")
        ActiveVersion.objects.filter(policy=policy).delete()
        policy.retired_at = timezone.now()
        policy.save(update_fields=["retired_at"])
        PublishEvent.objects.create(policy=policy, action=PublishEvent.Action.RETIRED, actor=retired_by, reason=reason)
        PublishRequest.objects.filter(version__policy=policy, status=PublishRequest.Status.PENDING).update(
            status=PublishRequest.Status.REJECTED, decided_at=policy.retired_at, decided_by=retired_by,
            decision_note="The policy was retired")
        # The policy leaves each environment's runtime configuration too (and pull bundles).
        for environment in Environment.objects.all():
            push_runtime_after_commit(environment)
    return policy
