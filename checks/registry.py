"""The environment's published policies as an OCI artifact, so `conftest pull oci://...` fetches
them with credentials it keeps outside the URL (conftest reads a registry's credentials from the
Docker config, `docker login` / `$DOCKER_CONFIG/config.json`; its HTTP downloader has no such
place, so an HTTP URL has to carry the token).

Gavel answers the read side of the OCI distribution API under `/v2/policies/<environment>/`:
the manifest (tag `latest`, or its digest) and its blobs. The layers are what conftest pushes
itself: one `application/vnd.cncf.openpolicyagent.policy.layer.v1+rego` layer per file, titled
with its file name, so conftest writes `<policy>.rego` and `<policy>_test.rego` as from the
tarball (bundle.py). Nothing is stored: the artifact is rebuilt from the active versions, and its
bytes (so its digests) depend only on them.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass

from fleet.models import Environment

from .bundle import policy_files, revision

MANIFEST_TYPE = "application/vnd.oci.image.manifest.v1+json"
CONFIG_TYPE = "application/vnd.unknown.config.v1+json"  # what `conftest push` writes
POLICY_LAYER_TYPE = "application/vnd.cncf.openpolicyagent.policy.layer.v1+rego"
TITLE = "org.opencontainers.image.title"
TAG = "latest"


def digest_of(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


@dataclass(frozen=True)
class Artifact:
    manifest: bytes
    digest: str  # the manifest's
    blobs: dict[str, bytes]  # digest -> bytes: the config and every layer

    def answers(self, reference: str) -> bool:
        """Whether a manifest reference (a tag or a digest) names this artifact."""
        return reference in (TAG, self.digest)


def _descriptor(media_type: str, data: bytes, **annotations: str) -> dict:
    found = {"mediaType": media_type, "digest": digest_of(data), "size": len(data)}
    return {**found, "annotations": annotations} if annotations else found


def artifact(environment: Environment) -> Artifact:
    config = b"{}"
    blobs = {digest_of(config): config}
    layers = []
    for name, text in policy_files(environment):
        data = text.encode("utf-8")
        blobs[digest_of(data)] = data
        layers.append(_descriptor(POLICY_LAYER_TYPE, data, **{TITLE: name}))
    manifest = json.dumps({
        "schemaVersion": 2, "mediaType": MANIFEST_TYPE, "config": _descriptor(CONFIG_TYPE, config),
        "layers": layers, "annotations": {"io.gavel.revision": revision(environment),
                                          "io.gavel.environment": environment.name},
    }, sort_keys=True, separators=(",", ":")).encode("utf-8")
    return Artifact(manifest, digest_of(manifest), blobs)
