"""Gavel's token to each OPA, rolled without a moment where OPA refuses Gavel.

OPA runs with `--authentication=token --authorization=basic` and Gavel's small `system.authz`
policy (AUTHZ_POLICY, a file `manage.py opa_authz` writes). The policy accepts a token whose
SHA-256 is in `data.system.gavel_tokens`, and OPA downloads that document from Gavel as a bundle
of its own (`GET /api/v1/opa/authz`, with the instance's token to Gavel). So the list survives
OPA restarts (the bundle is persisted and downloaded again), nobody can add a token to it
through OPA's REST API (the bundle owns the path), and OPA never holds a token, only hashes.

A rotation is two waits for OPA's next bundle download, each state saved before the next:

1. ADDING: the bundle lists the current and the new token; once OPA accepts the new one,
   Gavel switches to it;
2. REMOVING: for a grace period after the switch the bundle still lists both (a Gavel process
   may have read the old token just before it and send it a moment later); then only the new
   one, and once OPA refuses the old one, done (ACTIVE).

At every moment the token Gavel holds is one OPA accepts. Interrupted (OPA unreachable, Gavel
restarted), the rotation resumes where it stopped. The token stays stored (Gavel must send
it) but is never rendered or returned.
"""
from __future__ import annotations

from datetime import datetime, timedelta

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from core import queue
from core.digest import sha256_of
from core.opa.client import OpaClient, OpaError, OpaRejected

from .bundles import Bundle, tarball
from .credentials import new_token
from .delivery import signing
from .instances import ensure_in_service
from .models import GavelTokenState, OpaInstance

BUNDLE_ROOT = "system/gavel_tokens"

AUTHZ_POLICY = """\
package system.authz

# Written by Gavel. A request is allowed when it carries a token whose SHA-256 is in
# data.system.gavel_tokens (a bundle OPA downloads from Gavel); without one, only health
# checks and decision queries through Gavel's entrypoints (POST /v1/data/gavel_entry/...).

import rego.v1

default allow := false

allow if data.system.gavel_tokens[crypto.sha256(input.identity)]

allow if input.path == ["health"]

allow if {
	input.method == "POST"
	input.path[0] == "v1"
	input.path[1] == "data"
	input.path[2] == "gavel_entry"
}
"""

def opa_config() -> str:
    """The block added to the OPA's configuration; `gavel` is the service with the instance's token
    to Gavel. The bundle is signed like every bundle Gavel builds (delivery/signing.py): OPA requires it."""
    return f"""\
# Add to the OPA's configuration; `gavel` is the service with the instance's token to Gavel.
bundles:
  gavel_authz:
    service: gavel
    resource: authz
    persist: true
    polling: {{min_delay_seconds: 10, max_delay_seconds: 20}}
    signing: {{keyid: {signing.KEY_ID}}}
""" + signing.keys_yaml()


class RotationRefused(ValueError):
    """The instance's OPA does not run Gavel's authorization policy (or has no URL)."""


class NotYetApplied(Exception):
    """OPA has not downloaded the changed token list yet; try again shortly."""


def old_token_kept_until(instance: OpaInstance) -> datetime | None:
    """During REMOVING, when the old token leaves the bundle: a grace period after the switch."""
    if instance.token_state != GavelTokenState.REMOVING or instance.token_issued_at is None:
        return None
    return instance.token_issued_at + timedelta(seconds=settings.GAVEL_TOKEN_ROTATION_GRACE_SECONDS)


def accepted_tokens(instance: OpaInstance) -> list[str]:
    """The tokens OPA should accept now: during ADDING and for a grace period after the switch, both."""
    if instance.token_state == GavelTokenState.UNMANAGED or not instance.token:
        return []
    kept_until = old_token_kept_until(instance)
    keeps_other = instance.token_state == GavelTokenState.ADDING or bool(kept_until and timezone.now() < kept_until)
    return [instance.token] + ([instance.other_token] if keeps_other and instance.other_token else [])


def authz_bundle(instance: OpaInstance) -> Bundle:
    hashes = sorted(sha256_of(token) for token in accepted_tokens(instance))
    revision = sha256_of(",".join(hashes))[:16]
    return tarball({
        ".manifest": {"revision": revision, "roots": [BUNDLE_ROOT]},
        "data.json": {"system": {"gavel_tokens": {digest: True for digest in hashes}}},
    }, revision)


@transaction.atomic
def bootstrap(instance: OpaInstance) -> dict[str, str]:
    """A first Gavel token for the instance; the policy OPA starts with and the configuration
    it adds. Neither holds the token, which never leaves Gavel."""
    instance = OpaInstance.objects.select_for_update().get(pk=instance.pk)
    ensure_in_service(instance)
    instance.token = new_token()
    instance.other_token = ""
    instance.token_state = GavelTokenState.ACTIVE
    instance.token_issued_at = timezone.now()
    instance.token_detail = ""
    instance.save()
    return {"gavel-authz.rego": AUTHZ_POLICY, "gavel-authz-config.yaml": opa_config()}


def start_rotation(instance: OpaInstance) -> OpaInstance:
    """Mark a rotation as wanted (a no-op while one is under way); rotate() carries it out."""
    with transaction.atomic():
        instance = OpaInstance.objects.select_for_update().select_related("environment").get(pk=instance.pk)
        if instance.decommissioned_at:
            raise RotationRefused(f"{instance} is decommissioned: Gavel no longer talks to it")
        if instance.token_state == GavelTokenState.UNMANAGED:
            raise RotationRefused(f"{instance} does not run Gavel's authorization policy: set it up with "
                                  f"manage.py opa_authz {instance.environment.name} {instance.name}")
        if not (instance.url or instance.environment.opa_url):
            raise RotationRefused(f"{instance} has no URL Gavel could reach it at")
        if instance.token_state == GavelTokenState.ACTIVE:
            instance.other_token = new_token()
            instance.token_state = GavelTokenState.ADDING
            instance.token_detail = ""
            instance.save(update_fields=["other_token", "token_state", "token_detail"])
    return instance


def opa_accepts(instance: OpaInstance, token: str) -> bool:
    """Whether OPA lets this token read its token list (a call only a Gavel token may make)."""
    try:
        with OpaClient(instance.url or instance.environment.target_url, token=token) as opa:
            opa.get_data(BUNDLE_ROOT)
    except OpaRejected as exc:
        if exc.status_code in (401, 403):
            return False
        raise
    return True


def rotate(instance_id: int) -> OpaInstance:
    """Take a started rotation as far as OPA allows now. Raises NotYetApplied while OPA has not
    downloaded the changed list, OpaUnreachable while it cannot be reached (retry either)."""
    instance = OpaInstance.objects.select_related("environment").get(pk=instance_id)
    try:
        if instance.token_state == GavelTokenState.ADDING:
            if not opa_accepts(instance, instance.other_token):
                raise NotYetApplied(f"{instance} does not accept the new token yet")
            instance.token, instance.other_token = instance.other_token, instance.token
            instance.token_state = GavelTokenState.REMOVING
            instance.token_issued_at = timezone.now()
            instance.save(update_fields=["token", "other_token", "token_state", "token_issued_at"])
        if instance.token_state == GavelTokenState.REMOVING:
            kept_until = old_token_kept_until(instance)
            if kept_until and timezone.now() < kept_until:
                raise NotYetApplied(f"{instance} keeps the old token until {kept_until:%H:%M:%S} UTC, "
                                    "for Gavel's calls already under way")
            if opa_accepts(instance, instance.other_token):
                raise NotYetApplied(f"{instance} still accepts the old token")
            instance.other_token = ""
            instance.token_state = GavelTokenState.ACTIVE
            instance.token_detail = ""
            instance.save(update_fields=["other_token", "token_state", "token_detail"])
    except (OpaError, NotYetApplied) as exc:
        OpaInstance.objects.filter(pk=instance.pk).update(token_detail=f"{exc}"[:1000])
        raise
    return instance


def enqueue_rotation(instance: OpaInstance) -> None:
    """The worker carries the rotation through once this transaction commits (fleet.tasks)."""
    queue.after_commit("fleet.tasks.rotate_gavel_token", instance.pk)
