"""Taking an OPA instance out of service, and bringing its name back.

Operators replace OPA servers; the old one is often already switched off. Deleting it is not
an option (its publications, drift alerts and decisions are history), and waiting for it is
not either: publishing, rollback and retirement need every instance of an environment to
answer. So an instance is **decommissioned**: the row stays, and from then on

- its tokens to Gavel are revoked (a token copied off a retired box gets 401) and Gavel forgets
  its own token to it;
- Gavel no longer pushes to it, waits for it or checks it for drift (Environment.targets() and
  PublicationQuerySet.counted() leave it out); its open drift alerts close;
- a publication still on its way to it is cancelled, and one that waited only for it completes.

Nothing here talks to OPA: the box may be gone. Re-adding the same name later (the page, the
API or `opa_environment --add-instance`) puts the instance back in service with a new token
and the history it had.
"""
from __future__ import annotations

import logging

from django.db import transaction
from django.utils import timezone

from policies.models import Publication
from policies.services import confirm_version

from .models import DriftAlert, GavelTokenState, OpaInstance

log = logging.getLogger(__name__)


class InstanceDecommissioned(ValueError):
    """The instance is out of service: it gets no tokens and no rotations until re-added."""

    def __init__(self, instance: OpaInstance):
        super().__init__(f"{instance} was decommissioned on {instance.decommissioned_at:%Y-%m-%d %H:%M} UTC; "
                         f"add it again to put it back in service")


def ensure_in_service(instance: OpaInstance) -> None:
    if instance.decommissioned_at is not None:
        raise InstanceDecommissioned(instance)


@transaction.atomic
def decommission(instance: OpaInstance, *, by=None) -> OpaInstance:
    """Take `instance` out of service (see above). Safe to call twice: the first time counts."""
    instance = OpaInstance.objects.select_for_update().select_related("environment").get(pk=instance.pk)
    if instance.decommissioned_at is not None:
        return instance
    now = timezone.now()
    instance.decommissioned_at, instance.decommissioned_by = now, by
    # Gavel will never call it again: no reason to keep a credential it accepts (a rotation
    # under way stops too, rotate() has nothing left to do).
    instance.token = instance.other_token = instance.token_detail = ""
    instance.token_state = GavelTokenState.UNMANAGED
    instance.save(update_fields=["decommissioned_at", "decommissioned_by", "token", "other_token", "token_detail",
                                 "token_state"])
    instance.credentials.filter(revoked_at__isnull=True).update(revoked_at=now, revoked_by=by)
    DriftAlert.objects.filter(instance=instance, resolved_at__isnull=True).update(resolved_at=now)

    pending = instance.publications.exclude(status__in=Publication.FINISHED)
    groups = set(pending.exclude(group__isnull=True).values_list("group", flat=True))
    pending.update(status=Publication.Status.FAILED, detail=f"Cancelled: {instance} was decommissioned")
    # A publish that was only waiting for this instance is complete now.
    for group in groups:
        counted = Publication.objects.filter(group=group).counted()
        confirmed = counted.filter(status=Publication.Status.OK).select_related("version", "environment").first()
        if confirmed and not counted.exclude(status=Publication.Status.OK).exists():
            confirm_version(confirmed, f"{instance} was decommissioned")
    log.info("decommissioned %s", instance)
    return instance


def reactivate(instance: OpaInstance, *, url: str | None = None) -> OpaInstance:
    """Put a decommissioned instance's name back in service, e.g. for the server replacing it.
    It starts afresh: no token either way (issue one), no status report yet."""
    instance.decommissioned_at, instance.decommissioned_by = None, None
    if url is not None:
        instance.url = url
    instance.last_status_at, instance.healthy, instance.active_revision, instance.status_detail = None, None, "", ""
    instance.save(update_fields=["decommissioned_at", "decommissioned_by", "url", "last_status_at", "healthy",
                                 "active_revision", "status_detail"])
    log.info("%s is back in service", instance)
    return instance
