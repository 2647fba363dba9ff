"""OPA's credentials to Gavel: one bearer token per OPA instance, hashed, rotatable, revocable.

An OPA presents its token on every call to Gavel's OPA endpoints (decision logs, status,
bundles). Gavel stores only its SHA-256, so a database leak gives nobody a usable token, and
shows the token exactly once, when it is issued.

Rotation without downtime: issuing a new token for an instance that has one leaves the old one
valid until the new one is first used, or GAVEL_OPA_TOKEN_GRACE_HOURS pass, whichever comes
first. An OPA that reads its token from a file (`credentials.bearer.token_path`) picks the new
one up on its next request, so the switch is a file write. A batch refused in between (401) is
kept by OPA and uploaded again with the new token.

`make run` and docker compose give their OPA its token this way too (issue_token_file), so
the demo's batches are attributed to their instance. Two older credentials remain: an
environment's bundle token (pull environments, by environment only) and the global
GAVEL_OPA_TOKEN, the bootstrap credential for fleets not yet moved to tokens of their own.
"""
from __future__ import annotations

import hmac
import os
import secrets
import tempfile
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from core.digest import sha256_of

from .instances import ensure_in_service, reactivate
from .models import Environment, OpaCredential, OpaInstance

# Writing last_used_at on every upload would make each batch cost an extra UPDATE.
LAST_USED_RESOLUTION = timedelta(seconds=30)


@dataclass(frozen=True)
class OpaCaller:
    """Who is calling: an instance (its own token), an environment (its bundle token), or the
    bootstrap token (neither known)."""

    environment: Environment | None = None
    instance: OpaInstance | None = None


def bearer_token(request) -> str:
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    return token.strip() if scheme.lower() == "bearer" else ""


def authenticate(request) -> OpaCaller | None:
    """The caller behind the request's bearer token, or None (the caller gets 401)."""
    token = bearer_token(request)
    if not token:
        return None
    digest = sha256_of(token)
    # Looked up by its hash (not the token), then compared in constant time.
    credential = OpaCredential.objects.select_related("instance__environment").filter(token_hash=digest).first()
    if credential is not None and hmac.compare_digest(credential.token_hash, digest):
        now = timezone.now()
        # Decommissioning revokes an instance's tokens; the check here covers one issued in a race.
        if not credential.usable(now) or credential.instance.decommissioned_at is not None:
            return None
        _note_use(credential, now)
        return OpaCaller(environment=credential.instance.environment, instance=credential.instance)
    environment = Environment.objects.filter(bundle_token_hash=digest).first()
    if environment is not None and environment.bundle_token_matches(token):
        return OpaCaller(environment=environment)
    if bootstrap_token_accepted() and hmac.compare_digest(token.encode(), settings.GAVEL_OPA_TOKEN.encode()):
        return OpaCaller()
    return None


def bootstrap_token_accepted() -> bool:
    """GAVEL_OPA_TOKEN is accepted from OPA until GAVEL_OPA_BOOTSTRAP_TOKEN_OFF turns it off."""
    return bool(settings.GAVEL_OPA_TOKEN) and not settings.GAVEL_OPA_BOOTSTRAP_TOKEN_OFF


def _note_use(credential: OpaCredential, now) -> None:
    if credential.last_used_at is None:
        # First use of a new token: the tokens it replaced stop working now.
        OpaCredential.objects.filter(replaced_by=credential, revoked_at__isnull=True, expires_at__gt=now).update(
            expires_at=now)
    if credential.last_used_at is None or now - credential.last_used_at > LAST_USED_RESOLUTION:
        OpaCredential.objects.filter(pk=credential.pk).update(last_used_at=now)


def new_token() -> str:
    return "gvl_" + secrets.token_urlsafe(32)


@transaction.atomic
def issue_token(instance: OpaInstance, by=None) -> tuple[OpaCredential, str]:
    """A new token for the instance; returns it in clear text, the only time it exists outside
    OPA's configuration. The instance's usable tokens become its predecessors (see above).
    Refused (InstanceDecommissioned) for an instance out of service."""
    ensure_in_service(OpaInstance.objects.select_for_update().get(pk=instance.pk))
    token = new_token()
    credential = OpaCredential.objects.create(instance=instance, token_hash=sha256_of(token), created_by=by)
    grace_end = timezone.now() + timedelta(hours=settings.GAVEL_OPA_TOKEN_GRACE_HOURS)
    for old in instance.credentials.usable().exclude(pk=credential.pk):
        old.replaced_by = credential
        old.expires_at = min(old.expires_at, grace_end) if old.expires_at else grace_end
        old.save(update_fields=["replaced_by", "expires_at"])
    return credential, token


def issue_token_file(instance: OpaInstance, path: str | Path, by=None) -> OpaCredential:
    """issue_token, with the token written to `path` (for OPA's `credentials.bearer.token_path`)
    instead of returned. OPA re-reads that file on every request, so the file is replaced in one
    rename, never rewritten in place: OPA reads the old token or the new one, never half of one.
    A path that cannot be written fails before anything is issued; the file changes only once the
    token is committed, so OPA never presents a token Gavel does not know."""
    path = Path(path)
    if path.is_dir():
        raise IsADirectoryError(f"{path} is a directory; give the token file's path")
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    # mkstemp makes the file 0600 and the rename keeps that: the token is readable by its owner only.
    fd, staged = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    os.close(fd)
    try:
        credential, token = issue_token(instance, by=by)
    except BaseException:
        os.unlink(staged)
        raise

    def write():
        Path(staged).write_text(token + "\n")  # OPA trims surrounding whitespace
        os.replace(staged, path)

    transaction.on_commit(write)
    return credential


def revoke(credential: OpaCredential, by=None) -> OpaCredential:
    """The token stops working at once (an OPA still using it gets 401 and keeps its logs)."""
    if credential.revoked_at is None:
        credential.revoked_at = timezone.now()
        credential.revoked_by = by
        credential.save(update_fields=["revoked_at", "revoked_by"])
    return credential


def instance_problem(environment: Environment, name: str, url: str = "") -> str:
    """Why an instance cannot be added with this name and URL ("" when it can)."""
    from django.core.exceptions import ValidationError
    from django.core.validators import URLValidator, validate_slug

    try:
        validate_slug(name)
        if len(name) > 100:
            raise ValidationError("too long")
    except ValidationError:
        return "An instance name is letters, digits, - and _ (at most 100), like its OPA's `instance` label."
    if url:
        try:
            URLValidator(schemes=["http", "https"])(url)
        except ValidationError:
            return "The URL must be an http(s) URL where Gavel reaches the instance's REST API."
    # A decommissioned name may be added again: that puts it back in service (instances.py).
    if environment.instances.active().filter(name=name).exists():
        return f"{environment.name} already has an instance named {name}."
    return ""


@transaction.atomic
def add_instance(environment: Environment, name: str, url: str = "", by=None) -> tuple[OpaInstance, str]:
    """A new OPA instance of the environment with its own token (returned once). A decommissioned
    instance of that name comes back in service at `url`, with its history."""
    problem = instance_problem(environment, name, url)
    if problem:
        raise ValueError(problem)
    instance = environment.instances.select_for_update().filter(name=name).first()
    if instance is None:
        instance = OpaInstance.objects.create(environment=environment, name=name, url=url)
    elif instance.decommissioned_at is None:  # added by someone else meanwhile
        raise ValueError(f"{environment.name} already has an instance named {name}.")
    else:
        reactivate(instance, url=url)
    _, token = issue_token(instance, by=by)
    return instance, token
