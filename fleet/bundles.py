"""OPA bundles for pull environments, and what OPA's status reports say.

An environment that delivers by pull has no REST writes from Gavel: its OPA instances
download `GET /api/v1/opa/bundles/<environment>`, a tarball with the policies published to
that environment, their generated entrypoints and the environment's runtime data
(`gavel_config`, `gavel_approvals`). The manifest's revision names the versions
("agent_gateway@3,platform_changes@1"), so decision logs name the version that decided.
Every bundle built here is signed (delivery/signing.py): an OPA configured with Gavel's key refuses one
that was altered on its way.
"""
from __future__ import annotations

import gzip
import hashlib
import io
import json
import logging
import tarfile
from dataclasses import dataclass
from typing import Any

from django.db import transaction
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from approvals.opa_data import approvals_document
from policies.models import PolicyVersion, Publication
from policies.services import confirm_version
from rollout import runtime
from rollout.entrypoint import entry_source

from .delivery import signing
from .models import Environment, OpaInstance

log = logging.getLogger(__name__)
ROOTS = ["gavel", "gavel_entry", "gavel_config", "gavel_approvals"]


def bundle_versions(environment: Environment) -> list[PolicyVersion]:
    """Per policy, the version of its latest publication to the environment that did not fail."""
    latest: dict[int, PolicyVersion] = {}
    publications = (Publication.objects.filter(environment=environment, version__policy__retired_at__isnull=True)
                    .exclude(status=Publication.Status.FAILED).select_related("version__policy")
                    .order_by("requested_at", "pk"))
    for publication in publications:
        latest[publication.version.policy_id] = publication.version
    return sorted(latest.values(), key=lambda version: version.policy.name)


def revision(versions: list[PolicyVersion]) -> str:
    return ",".join(f"{version.policy.name}@{version.number}" for version in versions)


def parse_revision(text: str) -> dict[str, int]:
    """"agent_gateway@3,platform_changes@1" -> {"agent_gateway": 3, "platform_changes": 1}."""
    named = {}
    for part in (text or "").split(","):
        name, _, number = part.strip().partition("@")
        if name and number.isascii() and number.isdigit() and len(number) < 10:
            named[name] = int(number)
    return named


@dataclass
class Bundle:
    body: bytes
    etag: str
    revision: str


def build_bundle(environment: Environment) -> Bundle:
    """The environment's bundle. The same content always gives the same bytes (and ETag)."""
    versions = bundle_versions(environment)
    config = runtime.runtime_config(environment)
    config.pop("pushed_at", None)  # a timestamp would change the ETag on every download
    files = {
        ".manifest": {"revision": revision(versions), "roots": ROOTS, "metadata": {"environment": environment.name}},
        "data.json": {"gavel_config": config, "gavel_approvals": approvals_document()},
    }
    for version in versions:
        name = version.policy.name
        files[f"gavel/{name}/policy.rego"] = version.source
        files[f"gavel_entry/{name}/entry.rego"] = entry_source(version)
    return tarball(files, revision(versions))


def tarball(files: dict[str, Any], revision: str) -> Bundle:
    """A signed bundle of these files (text, or JSON documents): `.signatures.json` first, then
    the files. The same files give the same bytes."""
    contents = {path: (content if isinstance(content, str) else json.dumps(content, sort_keys=True)).encode()
                for path, content in files.items()}
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w") as tar:
        for path, data in {signing.SIGNATURES_FILE: signing.signatures_file(contents), **contents}.items():
            info = tarfile.TarInfo(f"/{path}")
            info.size, info.mtime, info.mode = len(data), 0, 0o644
            tar.addfile(info, io.BytesIO(data))
    body = gzip.compress(raw.getvalue(), mtime=0)
    return Bundle(body=body, etag=hashlib.sha256(body).hexdigest(), revision=revision)


# --- Status reports ----------------------------------------------------------------------


# What OPA's verifier says when it refuses a bundle, and what that means, in words.
REFUSALS = [
    (("digest mismatch", "not included in bundle signature", "specified in bundle signatures but not found"),
     "its content does not match its signature: it was altered after Gavel signed it"),
    (("failed to verify jwt signature", "scope mismatch"), "its signature is not from Gavel's bundle signing key"),
    (("missing .signatures.json",), "it is not signed"),
    (("verification key not provided", "verification key corresponding to id", "verification key id is empty"),
     "OPA has no key to check Gavel's signature with (configure keys.gavel; see the environments page)"),
]


def refusal_in_words(message: str) -> str:
    """"OPA refused the bundle: <why>" for a signature failure OPA reported, else ""."""
    lowered = message.lower()
    for needles, meaning in REFUSALS:
        if any(needle in lowered for needle in needles):
            return f"OPA refused the bundle: {meaning}"
    return ""


def _health(report: dict[str, Any]) -> tuple[bool, str]:
    problems = []
    for name, bundle in (report.get("bundles") or {}).items():
        if isinstance(bundle, dict) and (bundle.get("code") or bundle.get("errors")):
            said = " ".join(str(part) for part in [bundle.get("message", ""), *(bundle.get("errors") or [])] if part)
            words = refusal_in_words(said)
            problems.append(f"bundle {name}: " + (f"{words} ({said})" if words else
                                                 f"{bundle.get('code', '')} {bundle.get('message', '')}".strip()))
    for name, plugin in (report.get("plugins") or {}).items():
        state = plugin.get("state") if isinstance(plugin, dict) else None
        if state and state != "OK":
            problems.append(f"plugin {name}: {state}" + (f" ({plugin.get('message')})" if plugin.get("message") else ""))
    return not problems, "; ".join(problems)


@transaction.atomic
def record_status(environment: Environment, report: dict[str, Any], instance: OpaInstance | None = None) -> OpaInstance:
    """Store an OPA status report on its instance, and confirm pull publications its bundle
    activated. With an instance token the instance is known; with the environment's bundle token
    it is found (or registered on its first report) by its `instance` label, else OPA's id."""
    if instance is not None:
        instance = OpaInstance.objects.select_for_update().get(pk=instance.pk)
    else:
        labels = report.get("labels") if isinstance(report.get("labels"), dict) else {}
        name = str(labels.get("instance") or labels.get("id") or "").strip()[:100]
        if not name:
            raise ValueError("the report has no labels.id")
        instance, _ = OpaInstance.objects.select_for_update().get_or_create(environment=environment, name=name)
    healthy, problems = _health(report)
    bundles = {n: b for n, b in (report.get("bundles") or {}).items() if isinstance(b, dict)}
    revisions = [str(b.get("active_revision", "")) for b in bundles.values() if b.get("active_revision")]
    instance.last_status_at = timezone.now()
    instance.healthy = healthy
    instance.active_revision = ",".join(revisions)[:2000]
    activated = [parse_datetime(str(b.get("last_successful_activation", ""))) for b in bundles.values()]
    instance.status_detail = problems or (
        f"bundle activated {max(a for a in activated if a):%Y-%m-%d %H:%M:%S} UTC" if any(activated) else "")
    instance.save()
    # A decommissioned instance still reporting (with the bundle token) is shown, but no longer
    # confirms publications: it is not part of the environment any more.
    if environment.is_pull and instance.decommissioned_at is None:
        _confirm_pulled(environment, instance)
    return instance


def _confirm_pulled(environment: Environment, instance: OpaInstance) -> None:
    active = parse_revision(instance.active_revision)
    waiting = (Publication.objects.filter(environment=environment, status=Publication.Status.QUEUED)
               .select_related("version__policy", "environment"))
    for publication in waiting:
        if active.get(publication.version.policy.name) == publication.version.number:
            publication.status = Publication.Status.OK
            publication.confirmed_at = timezone.now()
            publication.attempts += 1
            publication.detail = f"{instance} reports bundle revision {instance.active_revision} active"
            publication.save()
            confirm_version(publication, publication.detail)

