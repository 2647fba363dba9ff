"""What each environment and each of its OPA instances runs of a policy, for the policy page:
Gavel's record (active version, publications on their way, the rollback target) beside what
each instance holds, read back from OPA now (push) or from its last status report (pull)."""
from __future__ import annotations

from dataclasses import dataclass

from core.digest import sha256_of
from core.opa.client import OpaError, opa_client
from policies.models import ActiveVersion, Policy, PolicyVersion, Publication
from policies.review import rollback_target
from rollout.entrypoint import entry_policy_id, entry_source

from .bundles import parse_revision
from .drift import expected_modules
from .models import Environment, OpaInstance


@dataclass
class InstanceState:
    environment: Environment
    instance: OpaInstance
    active: ActiveVersion | None  # what the environment runs, by Gavel's record
    in_flight: Publication | None  # a publication still on its way to this instance
    state: str  # "matches", "runs another version", "differs", "missing", "unreachable", "not published", "bundle"
    loaded: str = ""  # what the instance holds, by version ("v2", "v2 with the entrypoint of v1")
    detail: str = ""

    @property
    def matches(self) -> bool:
        return self.state == "matches"


@dataclass
class EnvironmentState:
    """One environment on the policy page: its active version and since when, what is on its
    way there, its rollback target, and each instance as read back from OPA."""

    environment: Environment
    active: ActiveVersion | None
    in_flight: list[Publication]
    rollback_target: PolicyVersion | None
    instances: list[InstanceState]

    @property
    def confirmed(self) -> int:
        return sum(p.status == Publication.Status.OK for p in self.in_flight)


def environment_states(policy: Policy, timeout: float = 2.0) -> list[EnvironmentState]:
    fingerprints = _fingerprints(policy)
    active = {row.environment_id: row for row in policy.active_versions.select_related("version", "publication")}
    states = []
    for environment in Environment.objects.prefetch_related("instances"):
        in_flight = _in_flight(policy, environment)
        instances = [_state(policy, environment, instance, active.get(environment.pk), in_flight, fingerprints,
                            timeout) for instance in environment.targets()]
        states.append(EnvironmentState(environment, active.get(environment.pk), in_flight,
                                       rollback_target(policy, environment) if environment.pk in active else None,
                                       instances))
    return states


def instance_states(policy: Policy, timeout: float = 2.0) -> list[InstanceState]:
    """Per instance of every environment: what is loaded (read back from OPA now, or from
    the last status report in pull environments) and whether it is what the environment runs."""
    return [instance for state in environment_states(policy, timeout) for instance in state.instances]


def _in_flight(policy: Policy, environment: Environment) -> list[Publication]:
    """The latest publication of the policy to the environment (all of its group), when it is
    not finished yet: the version on its way, with each instance's progress."""
    latest = (Publication.objects.filter(version__policy=policy, environment=environment, repush=False)
              .order_by("-requested_at", "-id").first())
    if latest is None:
        return []
    group = (Publication.objects.filter(group=latest.group).counted() if latest.group else
             Publication.objects.filter(pk=latest.pk)).select_related("version", "instance")
    group = list(group)
    return group if any(not p.is_finished for p in group) else []


def _fingerprints(policy: Policy) -> dict[str, str]:
    """SHA-256 of each version's source and of its entrypoint -> "v<n>" / "entry v<n>"."""
    known = {}
    for version in policy.versions.select_related("policy"):
        known[version.sha256] = f"v{version.number}"
        known[sha256_of(entry_source(version))] = f"entry v{version.number}"
    return known


def _state(policy, environment, instance, active, in_flight, fingerprints, timeout) -> InstanceState:
    mine = next((p for p in in_flight if (p.instance_id == instance.pk if instance.pk else not p.instance_id)), None)
    if environment.is_pull:
        names = parse_revision(instance.active_revision)
        number = names.get(policy.name)
        expected = active.version.number if active else None
        state = ("matches" if expected and number == expected else "runs another version" if number else
                 "bundle" if instance.active_revision else "not published")
        return InstanceState(environment, instance, active, mine, state, f"v{number}" if number else "",
                             f"active bundle revision {instance.active_revision or '(none reported)'}")
    url = instance.url or environment.target_url
    try:
        with opa_client(url, token=instance.token or None, timeout=timeout) as opa:
            loaded = {module["id"]: sha256_of(module["raw"]) for module in opa.list_policies()
                      if module["id"] in (policy.opa_policy_id, entry_policy_id(policy.name))}
    except OpaError as exc:
        return InstanceState(environment, instance, active, mine, "unreachable", "", str(exc))
    source, entry = loaded.get(policy.opa_policy_id), loaded.get(entry_policy_id(policy.name))
    held = _describe(source, entry, fingerprints)
    if not loaded:
        state = "missing" if active else "not published"
        return InstanceState(environment, instance, active, mine, state, "", "OPA does not hold the policy")
    if active is None:
        return InstanceState(environment, instance, active, mine, "runs another version", held,
                             f"{environment} runs no version of {policy.name}")
    expected = expected_modules(active.version)
    if loaded == expected:
        return InstanceState(environment, instance, active, mine, "matches", held, f"sha256 {source[:12]}")
    known = (fingerprints.get(source, "").startswith("v") and
             fingerprints.get(entry, "") == f"entry {fingerprints.get(source)}")
    detail = "; ".join(f"{r}: sha256 {(loaded.get(r) or 'missing')[:12]}" for r in expected
                       if loaded.get(r) != expected[r])
    return InstanceState(environment, instance, active, mine, "runs another version" if known else "differs",
                         held, detail)


def _describe(source: str | None, entry: str | None, fingerprints: dict[str, str]) -> str:
    """"v2", or the truth about a half-published or foreign instance: "v2 with the entrypoint of v1"."""
    policy = fingerprints.get(source or "", "unknown source" if source else "no policy")
    entry_name = fingerprints.get(entry or "", "an unknown entrypoint" if entry else "no entrypoint")
    if entry_name == f"entry {policy}":
        return policy
    entry_name = entry_name.replace("entry v", "the entrypoint of v")
    return f"{policy} with {entry_name}"
