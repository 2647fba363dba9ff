"""Evaluating configuration documents (a Terraform plan, Kubernetes manifests) against what an
environment runs, for CI checks.

Each active version is loaded into Gavel's sandboxed OPA (core/opa/local.py: the real `opa eval`,
no network, no environment, rlimits) beside the entrypoint Gavel publishes with it
(rollout/entrypoint.py) and the environment's runtime document (rollout/runtime.py:
`data.gavel_config`, with its approved, unexpired exceptions, canary settings and kill switch).
So a document gets the verdict an enforcement point in that environment would get, exceptions
applied by the entrypoint's own rules, not a copy of them. The policy's `warn` rules, as conftest
reads them, are collected too. One `opa eval` answers every document for every policy.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from core.opa.client import OpaError
from core.opa.local import LocalOpa
from fleet.models import Environment
from policies.models import ActiveVersion, PolicyVersion
from rollout.entrypoint import entry_source
from rollout.runtime import DATA_PATH, runtime_config

HARNESS_PACKAGE = "gavel_ci_check"


class CheckUnavailable(RuntimeError):
    """OPA could not evaluate the documents: the message says why, in words."""


@dataclass(frozen=True)
class Verdict:
    document: int  # index into the documents checked
    version: PolicyVersion
    result: dict  # the entrypoint's decision, as an enforcement point gets it
    warnings: list
    waivers: list  # [[denial, exception id], ...]: the denials the environment's exceptions waived


def active_versions(environment: Environment, *, policy: str = "", namespace: str = "") -> list[PolicyVersion]:
    """The versions the environment runs, optionally only the policy named or the package given."""
    running = ActiveVersion.objects.filter(environment=environment, policy__retired_at__isnull=True)
    if policy:
        running = running.filter(policy__name=policy)
    if namespace:
        running = running.filter(policy__package=namespace)
    return [active.version for active in running.select_related("version__policy").order_by("policy__name")]


def _ref(root: str, *parts: str) -> str:
    """A data reference that holds for any name (`data["a-b"]`), quoted as JSON strings."""
    return root + "".join(f"[{json.dumps(part)}]" for part in parts)


def harness(versions: list[PolicyVersion]) -> str:
    rules = [f"package {HARNESS_PACKAGE}\n"]
    for version in versions:
        policy = version.policy
        entry = _ref("data", "gavel_entry", policy.name, "decision")
        warn = _ref("data", *policy.package.split("."), "warn")
        waivers = _ref("data", "gavel_entry", policy.name, "waivers")
        rules.append(f"""results contains [i, {json.dumps(policy.name)}, verdict, warnings, waivers] if {{
	some i, document in input
	verdict := {entry} with input as document
	warnings := [w | some w in {warn}] with input as document
	waivers := [w | some w in {waivers}] with input as document
}}
""")
    return "\n".join(rules)


def evaluate(environment: Environment, versions: list[PolicyVersion], documents: list[Any]) -> list[Verdict]:
    """Every document against every version, in document then policy order."""
    by_name = {version.policy.name: version for version in versions}
    with LocalOpa() as opa:
        for version in versions:
            opa.put_policy(f"gavel/{version.policy.name}", version.source)
            opa.put_policy(f"gavel_entry/{version.policy.name}", entry_source(version))
        opa.put_policy("gavel_ci/harness", harness(versions))
        opa.put_data(DATA_PATH, runtime_config(environment))
        try:
            rows = opa.query(f"results := data.{HARNESS_PACKAGE}.results", documents)
        except OpaError as exc:
            raise CheckUnavailable(f"OPA could not evaluate the documents: {exc}") from exc
    found = rows[0]["results"] if rows else []
    verdicts = [Verdict(index, by_name[name], result if isinstance(result, dict) else {}, warnings, waivers)
                for index, name, result, warnings, waivers in found]
    return sorted(verdicts, key=lambda v: (v.document, v.version.policy.name))
