"""Canary rollout: who is enforced, computed the same way the entrypoint does it in OPA.

Order of precedence (as in entrypoint.py): kill switch, dry-run users, enforce users or
agents, enforce percentage, default mode.
"""
from __future__ import annotations

import hashlib
import json
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

from core.models import Decision, Outcome
from fleet.models import Environment
from policies.models import Policy

from .models import CanarySetting, Mode, describe_mode


def user_bucket(user_id: Any) -> int:
    """0-99 from SHA-256 of the user id: OPA's `sprintf("%v")` text, first 8 hex digits."""
    if isinstance(user_id, bool):
        text = "true" if user_id else "false"
    elif isinstance(user_id, (str, int)):
        text = str(user_id)
    else:
        text = json.dumps(user_id, separators=(",", ":"), sort_keys=True)
    return int(hashlib.sha256(text.encode("utf-8")).hexdigest()[:8], 16) % 100


def field_path(dotted: str) -> list[str]:
    return [part for part in dotted.split(".") if part]


def value_at(document: Any, path: list[str], default: Any = "") -> Any:
    for key in path:
        if not isinstance(document, dict) or key not in document:
            return default
        document = document[key]
    return document


@dataclass(frozen=True)
class Rollout:
    """The rollout values of one policy in one environment (a CanarySetting without history)."""

    mode: str = Mode.ENFORCE
    enforce_percentage: int = 0
    enforce_users: tuple[str, ...] = ()
    enforce_agents: tuple[str, ...] = ()
    dry_run_users: tuple[str, ...] = ()
    user_field: str = "user.id"
    agent_field: str = "agent.id"

    @classmethod
    def of(cls, setting: CanarySetting | None) -> Rollout:
        if setting is None:
            return cls()
        return cls(setting.mode, setting.enforce_percentage, tuple(setting.enforce_users),
                   tuple(setting.enforce_agents), tuple(setting.dry_run_users), setting.user_field,
                   setting.agent_field)

    def effective_mode(self, request: Any, kill_switch: bool = False) -> str:
        request = request if isinstance(request, dict) else {}
        return self.mode_of(value_at(request, field_path(self.user_field)),
                            value_at(request, field_path(self.agent_field)), kill_switch)

    def mode_of(self, user_id: Any, agent_id: Any, kill_switch: bool = False) -> str:
        """The mode for a request by this user and agent (their values in the input, "" if absent)."""
        if kill_switch or user_id in self.dry_run_users:
            return Mode.DRY_RUN
        if user_id in self.enforce_users or agent_id in self.enforce_agents:
            return Mode.ENFORCE
        if user_bucket(user_id) < self.enforce_percentage:
            return Mode.ENFORCE
        return self.mode

    def effective(self, kill_switch: bool = False) -> str:
        """The mode most requests get, for a badge: the kill switch first, then the percentage."""
        if kill_switch:
            return Mode.DRY_RUN
        if self.mode != Mode.ENFORCE and self.enforce_percentage >= 100:
            return Mode.ENFORCE
        return self.mode

    def summary(self, kill_switch: bool = False) -> str:
        """The effective mode in words, e.g. "enforced for 75 %, dry-run for the others"."""
        return describe_mode(self.mode, self.enforce_percentage, kill_switch)

    def as_opa_data(self) -> dict[str, Any]:
        """The settings as they are (what entrypoints published before `as_entrypoint_data` read)."""
        return {
            "mode": str(self.mode),
            "enforce_percentage": self.enforce_percentage,
            "enforce_users": list(self.enforce_users),
            "enforce_agents": list(self.enforce_agents),
            "dry_run_users": list(self.dry_run_users),
            "user_path": field_path(self.user_field),
            "agent_path": field_path(self.agent_field),
        }

    def as_entrypoint_data(self, kill_switch: bool = False) -> dict[str, Any]:
        """The same order of precedence as effective_mode(), decided ahead wherever Gavel can, so
        the entrypoint reads and merges nothing it does not need per request: the kill switch
        leaves one mode for everyone; named users in one object (a dry-run user listed as enforced
        too stays dry-run), looked up in constant time; the agent field only when agents are
        named; the percentage only when it decides (0 and 100 are decided by `mode`)."""
        if kill_switch:
            return {"mode": str(Mode.DRY_RUN), "user_path": field_path(self.user_field), "user_modes": {}}
        user_modes = {**dict.fromkeys(self.enforce_users, str(Mode.ENFORCE)),
                      **dict.fromkeys(self.dry_run_users, str(Mode.DRY_RUN))}
        data = {"mode": str(Mode.ENFORCE) if self.enforce_percentage >= 100 else str(self.mode),
                "user_path": field_path(self.user_field), "user_modes": user_modes}
        if self.enforce_agents:
            data["agent_path"] = field_path(self.agent_field)
            data["agent_modes"] = dict.fromkeys(self.enforce_agents, str(Mode.ENFORCE))
        if 0 < self.enforce_percentage < 100:
            data["canary_percentage"] = self.enforce_percentage
        return data


def current_setting(policy: Policy, environment: Environment) -> CanarySetting | None:
    return policy.canary_settings.filter(environment=environment).first()


def current_rollout(policy: Policy, environment: Environment) -> Rollout:
    return Rollout.of(current_setting(policy, environment))


def enforcement(policy: Policy) -> dict[str, Any]:
    """How the policy is enforced, as its summary and evidence pages say it: each environment it
    runs in with its rollout (published nowhere, it is enforced nowhere), whether any environment
    exists, and the exceptions in force with who approved each (read with them, not one by one)."""
    return {
        "rollouts": [(env, current_rollout(policy, env)) for env in Environment.objects.filter(
            active_versions__policy=policy).distinct().order_by("name")],
        "environments_exist": Environment.objects.exists(),
        "exceptions": policy.exceptions.active().select_related("environment", "approved_by"),
    }


@dataclass
class Preview:
    """What a rollout would have done to the decisions recorded in a window."""

    decisions: int = 0  # replayed: the newest PREVIEW_LIMIT at most
    total: int = 0  # recorded in the window
    enforced: int = 0
    enforced_denied: int = 0
    enforced_held: int = 0  # enforced and held for a person's approval
    by_mode: Counter = field(default_factory=Counter)

    @property
    def dry_run(self) -> int:
        return self.by_mode[Mode.DRY_RUN]


READ_DECISIONS = "core.view_decision"
PREVIEW_LIMIT = 20_000  # decisions a preview replays: the newest of its window
# What the policy held for approval, enforced or only recorded in dry-run.
HELD_OUTCOMES = (Outcome.REQUIRE_APPROVAL, Outcome.WOULD_REQUIRE_APPROVAL)


def previewable(user, proposed: Rollout, current: Rollout) -> Rollout:
    """The rollout a preview may replay for `user`. Decision readers preview any proposal. Anyone
    else gets counts only under the policy's own configured fields and named users, with the
    proposed mode and percentage: a guessed user name or input path in a preview would tell them
    who decided what, which the audit trail refuses them."""
    if user.has_perm(READ_DECISIONS):
        return proposed
    return replace(current, mode=proposed.mode, enforce_percentage=proposed.enforce_percentage)


def preview(policy: Policy, environment: Environment, rollouts: Sequence[Rollout], since: datetime) -> list[Preview]:
    """Replay each rollout over the inputs recorded in `environment` since `since`: how many would be
    enforced, and denied (a rollout applies to one environment's OPAs only). At most the newest
    PREVIEW_LIMIT decisions are replayed (`total` says how many the window holds): each is decoded
    and bucketed in Python, and the page's two previews of a day of 265,000 took 9.4 s. The rollouts
    share one read of the decisions (the page compares a proposal with the current rollout), and
    each user and agent is bucketed once."""
    kill_switch = environment.kill_switch_engaged
    results = [Preview() for _ in rollouts]
    replays = [Replay(rollout, kill_switch) for rollout in rollouts]
    recorded = Decision.objects.filter(policy=policy, environment__in=environment.stored_as(), timestamp__gte=since)
    rows = recorded.order_by("-timestamp", "-id").values_list("input", "outcome")[:PREVIEW_LIMIT]
    replayed = 0
    for request, outcome in rows.iterator(chunk_size=2000):
        replayed += 1
        request = request if isinstance(request, dict) else {}
        for replay, result in zip(replays, results):
            mode = replay.mode(request)
            result.by_mode[mode] += 1
            if mode == Mode.ENFORCE:
                result.enforced += 1
                result.enforced_denied += outcome in (Outcome.DENY, Outcome.WOULD_DENY)
                result.enforced_held += outcome in HELD_OUTCOMES
    total = replayed if replayed < PREVIEW_LIMIT else recorded.count()
    for result in results:
        result.decisions, result.total = replayed, total
    return results


class Replay:
    """One rollout's mode for each recorded input, remembered per (user, agent): a day's decisions
    come from far fewer users than requests, and hashing each into its bucket is the costly step."""

    def __init__(self, rollout: Rollout, kill_switch: bool):
        self.rollout, self.kill_switch = rollout, kill_switch
        self.user_path, self.agent_path = field_path(rollout.user_field), field_path(rollout.agent_field)
        self.modes: dict[tuple, str] = {}

    def mode(self, request: dict) -> str:
        user_id, agent_id = value_at(request, self.user_path), value_at(request, self.agent_path)
        # The types are part of the key: True == 1 in Python, but OPA buckets "true" and "1" apart.
        key = (type(user_id), user_id, type(agent_id), agent_id)
        try:
            return self.modes[key]
        except KeyError:
            mode = self.modes[key] = self.rollout.mode_of(user_id, agent_id, self.kill_switch)
            return mode
        except TypeError:  # an object or a list as the id: not a key, decided each time
            return self.rollout.mode_of(user_id, agent_id, self.kill_switch)
