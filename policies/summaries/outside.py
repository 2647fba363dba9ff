"""The data a policy reads outside itself (`data.acme.scopes[...]`), read from the OPA of the
environment the version runs in (else the default environment), so that rules reading it get
worked examples OPA confirms with what it really holds.

Only the documents the policy refers to are read, in one query through core/opa's httpx client.
Nothing here raises for an OPA that cannot be read: the result says why, in words, and the
examples that need the data say so instead of appearing.
"""
from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass, field

from django.conf import settings

from core.opa.client import OpaError, OpaRejected, OpaUnreachable, opa_client
from fleet.models import Environment
from policies.models import ActiveVersion

log = logging.getLogger(__name__)

READ_TIMEOUT = 3.0  # seconds: a page waits at most this long for an OPA that does not answer


@dataclass
class DataRead:
    """What Gavel read for one version: `data` holds every document found (None when nothing
    could be read); `problem` says, in words, why some or all are missing ("" when none is)."""
    paths: tuple
    environment: str = ""
    data: dict | None = None
    problem: str = ""
    missing: list = field(default_factory=list)
    where: str = ""  # "the dev environment's OPA"

    @property
    def digest(self) -> str:
        return hashlib.sha256(json.dumps(self.data, sort_keys=True).encode()).hexdigest() if self.data else ""

    def record(self, now) -> dict:
        """What the stored summary keeps of it (JSON): enough to tell when OPA's data changed, and to say
        on the page what the examples were tried with."""
        return {"paths": [list(p) for p in self.paths], "shown": ", ".join(" › ".join(p) for p in self.paths),
                "environment": self.environment, "read": bool(self.data), "problem": self.problem,
                "digest": self.digest, **checked(now)}


def checked(now) -> dict:
    return {"checked_at": now.isoformat(), "checked_text": now.strftime("%Y-%m-%d %H:%M UTC")}


def dotted(path) -> str:
    return "data." + ".".join(path)


def environment_of(version) -> Environment | None:
    """Where the version runs (the default environment first when it runs there too), else the
    default environment; None when that was never made (then OPA_URL is its OPA)."""
    names = list(ActiveVersion.objects.filter(version=version).values_list("environment__name", flat=True))
    name = settings.GAVEL_ENVIRONMENT if settings.GAVEL_ENVIRONMENT in names or not names else sorted(names)[0]
    return Environment.objects.filter(name=name).first()


def _targets(environment: Environment | None) -> list[tuple[str, str | None]]:
    """The (URL, token) of each OPA the environment's data can be read from."""
    if environment is None:
        return [(settings.OPA_URL, None)]
    # A pull environment's OPA is reached only at an address of its own (OPA_URL is another OPA's).
    return [(t.url or environment.target_url, t.token or None) for t in environment.targets()
            if t.url or not environment.is_pull]


def _query(paths: tuple) -> str:
    # Each document collected into a list, so one that is undefined leaves the rest readable.
    parts = ", ".join(
        f'"p{i}": [v | v := data{"".join(f"[{json.dumps(name)}]" for name in path)}]' for i, path in enumerate(paths))
    return f"gavel_read := {{{parts}}}"


def _set(into: dict, path: tuple, value) -> None:
    for name in path[:-1]:
        into = into.setdefault(name, {})
    into[path[-1]] = value


def read(version, paths: tuple) -> DataRead:
    """The documents at `paths` as the OPA of the version's environment holds them."""
    environment = environment_of(version)
    name = environment.name if environment else settings.GAVEL_ENVIRONMENT
    where = f"the {name} environment's OPA"
    result = DataRead(paths=tuple(paths), environment=name, where=where)
    targets = _targets(environment)
    if not targets:
        result.problem = f"the {name} environment has no OPA instance Gavel can read it from"
        return result
    rows, last_problem = None, ""
    for url, token in targets:
        try:
            with opa_client(url, token=token, timeout=READ_TIMEOUT) as opa:
                rows = opa.query(_query(result.paths))
            break
        except OpaUnreachable as exc:
            log.warning("could not read %s for %s: %s", paths, version, exc)
            last_problem = f"Gavel could not reach {where} to read it"
        except OpaRejected as exc:
            log.warning("OPA refused to read %s for %s: %s", paths, version, exc)
            last_problem = f"{where} refused to let Gavel read it (HTTP {exc.status_code})"
        except (OpaError, ValueError) as exc:
            log.warning("could not read %s for %s: %s", paths, version, exc)
            last_problem = f"{where} did not answer Gavel's read of it"
    if rows is None:
        result.problem = last_problem
        return result
    found = (rows[0].get("gavel_read") or {}) if rows else {}
    data: dict = {}
    for i, path in enumerate(result.paths):
        values = found.get(f"p{i}") or []
        if values:
            _set(data, path, values[0])
        else:
            result.missing.append(path)
    result.data = data
    if result.missing:
        result.problem = f"{where} holds nothing at " + ", ".join(dotted(p) for p in result.missing)
    return result
