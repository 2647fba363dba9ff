"""The runtime configuration Gavel keeps in each OPA: `data.gavel_config`.

One document per environment, replaced whole on every push (a single PUT, so OPA never
sees half of a change): the kill switch, and per policy its rollout and the approved,
unexpired exceptions. The entrypoints (entrypoint.py) read each policy's `entrypoint`: the
same, complete and shaped so that OPA does the least work per request.
"""
from __future__ import annotations

import logging
from typing import Any

from django.db import transaction
from django.utils import timezone

from fleet.models import Environment
from policies.models import Policy, Publication

from .canary import Rollout, field_path
from .models import CanarySetting, PolicyException

log = logging.getLogger(__name__)
DATA_PATH = "gavel_config"


def exception_as_opa_data(exception: PolicyException) -> dict[str, Any]:
    return {
        "id": exception.pk,
        "reason_contains": exception.reason_contains,
        "match": [{"path": field_path(c["field"]), "value": c["value"]} for c in exception.match],
        "expires_ns": int(exception.expires_at.timestamp() * 1_000_000_000),
    }


def exception_index(exceptions: list[dict[str, Any]]) -> dict[str, Any]:
    """Where the entrypoint finds the few exceptions that can apply to a request: each exception
    under its first condition whose value is text, by that field and value. For each field in
    `exception_fields`, OPA looks up `exceptions_by_field[field][<the request's value>]` instead
    of checking every exception. The few whose conditions are all numbers or booleans are listed
    apart and always checked."""
    fields: dict[str, list[str]] = {}
    by_field: dict[str, dict[str, list]] = {}
    unindexed: list[dict[str, Any]] = []
    for exception in exceptions:
        condition = next((c for c in exception["match"] if isinstance(c["value"], str)), None)
        if condition is None:
            unindexed.append(exception)
            continue
        name = ".".join(condition["path"])
        fields[name] = condition["path"]
        by_field.setdefault(name, {}).setdefault(condition["value"], []).append(exception)
    found = {"exception_fields": fields, "exceptions_by_field": by_field, "unindexed_exceptions": unindexed}
    return {key: value for key, value in found.items() if value}  # none at all: nothing for OPA to look at


def rollout_document(rollout: Rollout, exceptions: list[dict[str, Any]], kill_switch: bool = False) -> dict[str, Any]:
    """One policy's part of data.gavel_config. `entrypoint` is what the entrypoint reads, complete
    and shaped for lookups (entrypoint.py); the rest is the settings as they are, and what
    entrypoints published before it read."""
    return {**rollout.as_opa_data(), "exceptions": exceptions,
            "entrypoint": {**rollout.as_entrypoint_data(kill_switch), **exception_index(exceptions)}}


def running_in(environment: Environment):
    """The policies the environment runs, or (pull) whose version its bundle serves already."""
    running = Policy.objects.filter(active_versions__environment=environment, retired_at__isnull=True)
    if environment.is_pull:
        in_bundle = Publication.objects.filter(environment=environment).exclude(status=Publication.Status.FAILED)
        running = running | Policy.objects.filter(retired_at__isnull=True, versions__publications__in=in_bundle)
    return running.distinct().order_by("name")


def runtime_config(environment: Environment) -> dict[str, Any]:
    latest: dict[int, CanarySetting] = {}
    for setting in CanarySetting.objects.filter(environment=environment).order_by("created_at", "id"):
        latest[setting.policy_id] = setting  # later rows win
    exceptions: dict[int, list] = {}
    for exception in PolicyException.objects.active().filter(environment=environment).order_by("pk"):
        exceptions.setdefault(exception.policy_id, []).append(exception_as_opa_data(exception))
    policies = {}
    for policy in running_in(environment):
        policies[policy.name] = rollout_document(Rollout.of(latest.get(policy.pk)), exceptions.get(policy.pk, []),
                                                 environment.kill_switch_engaged)
    return {"kill_switch": environment.kill_switch_engaged, "policies": policies,
            "pushed_at": timezone.now().isoformat()}


def push_runtime_config(environment: Environment) -> dict[str, Any]:
    """PUT the environment's document to each of its OPA instances. Raises OpaUnreachable for
    the caller to retry. A pull environment gets it in its bundle instead: OPA refuses REST
    writes under a bundle's roots, so nothing is written (a bucket's bundle is rewritten if it changed).

    Pushes to one environment take turns (its row locked while the document is read and written):
    otherwise a push that read the settings before a change could land after the push of the
    change, and OPA would run the older settings until the next push."""
    with transaction.atomic():
        environment = Environment.objects.select_for_update().get(pk=environment.pk)
        document = runtime_config(environment)
        if environment.is_pull:
            environment.bundle_changed()  # object storage: written to the bucket again if it changed
            return document
        for instance in environment.targets():
            with instance.client() as opa:
                opa.put_data(DATA_PATH, document)
            log.info("pushed runtime config to %s (%d policies)", instance.url, len(document["policies"]))
    return document
