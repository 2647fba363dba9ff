"""What security admins change in a rollout: canary settings and the kill switch. Each change
is a new row (the older ones are its history) and reaches OPA once the transaction commits."""
from __future__ import annotations

from django.db import transaction
from django.db.models import OuterRef, Subquery

from core import queue
from fleet.models import Environment
from policies.models import Policy

from .canary import Rollout
from .models import CanarySetting, KillSwitchChange


def push_runtime_after_commit(environment: Environment) -> None:
    """Replace the environment's data.gavel_config in OPA once this transaction commits."""
    queue.after_commit("rollout.tasks.push_runtime_config", environment.pk)


@transaction.atomic
def change_rollout(policy: Policy, environment: Environment, rollout: Rollout, *, changed_by, reason: str):
    """Save a new rollout state (the old ones stay as history) and push it to OPA."""
    setting = CanarySetting.objects.create(
        policy=policy, environment=environment, mode=rollout.mode, enforce_percentage=rollout.enforce_percentage,
        enforce_users=list(rollout.enforce_users), enforce_agents=list(rollout.enforce_agents),
        dry_run_users=list(rollout.dry_run_users), user_field=rollout.user_field, agent_field=rollout.agent_field,
        changed_by=changed_by, reason=reason,
    )
    push_runtime_after_commit(environment)
    return setting


@transaction.atomic
def set_kill_switch(environment: Environment, *, engaged: bool, changed_by, reason: str) -> KillSwitchChange:
    change = KillSwitchChange.objects.create(
        environment=environment, engaged=engaged, changed_by=changed_by, reason=reason
    )
    push_runtime_after_commit(environment)
    return change


def engaged_kill_switches() -> list[KillSwitchChange]:
    """Each environment whose kill switch is engaged now, as the change that engaged it (one query)."""
    latest = KillSwitchChange.objects.filter(environment=OuterRef("environment")).order_by("-created_at", "-id")
    return list(KillSwitchChange.objects.filter(pk=Subquery(latest.values("pk")[:1]), engaged=True)
                .select_related("environment", "changed_by").order_by("environment__name"))
