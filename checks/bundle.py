"""The environment's published policies as a tarball `conftest pull` accepts, so a team that keeps
conftest tests against exactly what Gavel published: each active version's Rego as
`<policy>.rego` (its package unchanged, so `conftest test --namespace <package>` finds it) and its
Rego tests as `<policy>_test.rego` (`conftest verify`). The bytes depend only on the versions."""
from __future__ import annotations

import gzip
import io
import tarfile

from fleet.models import Environment

from .evaluate import active_versions


def _add(archive: tarfile.TarFile, name: str, text: str) -> None:
    data = text.encode("utf-8")
    info = tarfile.TarInfo(name)
    info.size, info.mode, info.mtime = len(data), 0o644, 0
    archive.addfile(info, io.BytesIO(data))


def revision(environment: Environment) -> str:
    """`provisioning@3,platform_changes@1`: which versions the tarball holds."""
    return ",".join(f"{v.policy.name}@{v.number}" for v in active_versions(environment))


def policy_files(environment: Environment) -> list[tuple[str, str]]:
    """[(file name, Rego), ...]: what `conftest pull` gets, by HTTP (the tarball) or OCI (registry.py)."""
    files = []
    for version in active_versions(environment):
        files.append((f"{version.policy.name}.rego", version.source))
        if version.tests.strip():
            files.append((f"{version.policy.name}_test.rego", version.tests))
    return files


def policy_tarball(environment: Environment) -> bytes:
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as archive:
        for name, text in policy_files(environment):
            _add(archive, name, text)
    return gzip.compress(raw.getvalue(), mtime=0)
