"""Which policy and version made a decision, as the worker stores it."""
from __future__ import annotations

from bisect import bisect_right
from collections.abc import Callable
from datetime import datetime
from typing import Any

from core.models import VersionSource
from policies.models import Policy, PolicyVersion, Publication
from rollout.entrypoint import entry_data_path

Timeline = dict[tuple[int, str | None], tuple[list, list]]


def read_timeline(since: datetime | None) -> Timeline:
    """Confirmed publications in time order, per (policy, environment) and per policy across all,
    enough to resolve any decision made from `since` on (None: from any time).

    There is one publication per OPA instance per publish, so the history only grows. Of those
    confirmed by `since`, only each (policy, environment)'s latest can decide a later decision:
    Postgres finds those few by an index, then hands over everything after. Each is read as plain
    values, and each version once without its source and tests (900 publications took 82 ms a
    batch with them)."""
    columns = ("version_id", "policy_id", "environment__name", "confirmed_at", "id")
    confirmed = Publication.objects.filter(status=Publication.Status.OK)
    if since is None:
        rows = list(confirmed.values_list(*columns))
    else:
        rows = [*Publication.objects.latest_confirmed_by(since).values_list(*columns),
                *confirmed.filter(confirmed_at__gt=since).values_list(*columns)]
    rows.sort(key=lambda row: (row[3], row[4]))  # of two confirmed at once, the later publication decides
    published = PolicyVersion.objects.only("policy_id", "number").in_bulk({row[0] for row in rows})
    timeline: Timeline = {}
    for version_id, policy_id, environment, confirmed_at, _ in rows:
        for key in ((policy_id, environment or ""), (policy_id, None)):
            times, versions = timeline.setdefault(key, ([], []))
            times.append(confirmed_at)
            versions.append(published[version_id])
    return timeline


class VersionResolver:
    """Finds the policy and version behind a decision.

    Decisions made through Gavel's entrypoint report their policy and version in the result.
    Others (a policy queried directly) get the version whose publication to the decision's
    environment was the latest confirmed one at decision time.
    """

    def __init__(self, earliest: Callable[[], datetime] | None = None):
        """`earliest`: the batch's earliest decision time, asked for only if the publications are read.
        OPA logs concurrent decisions slightly out of order, so the first decision to need them is
        seldom the earliest; without it, a decision before the first makes the resolver read them all."""
        prefixes = []
        for policy in Policy.objects.all():
            prefixes += [(policy.data_path, policy), (entry_data_path(policy.name).rsplit("/", 1)[0], policy)]
        self.prefixes = sorted(prefixes, key=lambda item: len(item[0]), reverse=True)
        self.by_name = {policy.name: policy for _, policy in prefixes}
        self.versions: dict[tuple[int, int], PolicyVersion | None] = {}
        self.earliest = earliest
        self.timeline: Timeline | None = None
        self.timeline_since: datetime | None = None

    def timeline_for(self, when: datetime) -> Timeline:
        """The publications, read when a decision first needs them (those made through Gavel's
        entrypoint report their version): from the batch's earliest decision on, or this one's.
        Should an earlier decision follow all the same, the whole history is read, once."""
        if self.timeline is None:
            since = min(when, self.earliest()) if self.earliest else when
            self.timeline, self.timeline_since = read_timeline(since), since
        elif self.timeline_since is not None and when < self.timeline_since:
            self.timeline, self.timeline_since = read_timeline(None), None
        return self.timeline

    def policy_for(self, path: str) -> Policy | None:
        path = path.strip("/")
        for prefix, policy in self.prefixes:  # longest first
            if path == prefix or path.startswith(prefix + "/"):
                return policy
        return None

    def reported_version(self, policy: Policy, number: int) -> PolicyVersion | None:
        key = (policy.pk, number)
        if key not in self.versions:
            self.versions[key] = PolicyVersion.objects.only("policy_id", "number").filter(
                policy=policy, number=number).first()
        return self.versions[key]

    def bundle_version(self, policy: Policy, bundles: Any) -> PolicyVersion | None:
        """The version a bundle revision names ("agent_gateway@3,platform_changes@1")."""
        for bundle in bundles.values() if isinstance(bundles, dict) else ():
            revision = bundle.get("revision") if isinstance(bundle, dict) else None
            for part in str(revision or "").split(","):
                name, _, number = part.strip().partition("@")
                if name == policy.name and number.isascii() and number.isdigit() and len(number) < 10:
                    return self.reported_version(policy, int(number))
        return None

    def resolve(self, path: str, result: Any, when: datetime, bundles: Any = None,
                environment: str | None = None) -> tuple[Policy | None, PolicyVersion | None, str]:
        if bundles and (policy := self.policy_for(path)) and (version := self.bundle_version(policy, bundles)):
            return policy, version, VersionSource.BUNDLE
        entry = result if isinstance(result, dict) else {}
        number, name = entry.get("policy_version"), entry.get("policy")
        if isinstance(number, int) and 0 < number < 2**31:  # a version number Postgres can look up
            policy = (self.by_name.get(name) if isinstance(name, str) else None) or self.policy_for(path)
            version = self.reported_version(policy, number) if policy else None
            if version:
                return policy, version, VersionSource.REPORTED
        policy = self.policy_for(path)
        if policy is None:
            return None, None, VersionSource.UNKNOWN
        # The environment's own publications when Gavel knows them, else any environment's.
        timeline = self.timeline_for(when)
        times, versions = timeline.get((policy.pk, environment)) or timeline.get((policy.pk, None), ([], []))
        index = bisect_right(times, when)
        if index:
            return policy, versions[index - 1], VersionSource.PUBLICATION
        return policy, None, VersionSource.UNKNOWN
