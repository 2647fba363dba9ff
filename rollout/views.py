"""Rollout pages for security admins: kill switch per environment, canary per policy."""
from datetime import timedelta

from django.contrib import messages
from django.contrib.auth.decorators import permission_required
from django.core.exceptions import PermissionDenied
from django.shortcuts import get_object_or_404, redirect, render
from django.utils import timezone
from django.views.decorators.http import require_POST

from fleet.models import Environment
from policies.models import Policy

from . import canary, runtime, services
from .forms import KillSwitchForm, RolloutForm


@permission_required("rollout.view_canarysetting", raise_exception=True)
def overview(request):
    Environment.objects.default()  # the configured OPA always has an environment to show
    environments = Environment.objects.prefetch_related("kill_switch_changes__changed_by")
    rows = []
    for env in environments:
        engaged = env.kill_switch_engaged
        policies = []
        for policy in runtime.running_in(env):
            rollout = canary.current_rollout(policy, env)
            policies.append((policy, rollout, rollout.effective(engaged), rollout.summary(engaged), rollout.summary()))
        rows.append({"environment": env, "kill_switch": engaged, "policies": policies})
    return render(request, "rollout/overview.html", {"rows": rows})


@require_POST
@permission_required("rollout.add_killswitchchange", raise_exception=True)
def kill_switch(request, environment):
    environment = get_object_or_404(Environment, name=environment)
    form = KillSwitchForm(request.POST)
    if not form.is_valid():
        messages.error(request, "Say why you change the kill switch.")
        return redirect("rollout:overview")
    engaged = form.cleaned_data["engaged"]
    services.set_kill_switch(environment, engaged=engaged, changed_by=request.user, reason=form.cleaned_data["reason"])
    verb = "engaged: every policy in it now runs in dry-run" if engaged else "released"
    messages.warning(request, f"Kill switch for {environment} {verb}.")
    return redirect("rollout:overview")


def _rollout_context(policy, environment, form, preview=None):
    current, engaged = canary.current_rollout(policy, environment), environment.kill_switch_engaged
    return {
        "current_effective": current.effective(engaged), "current_summary": current.summary(engaged),
        "policy": policy, "environment": environment, "form": form, "preview": preview,
        "history": policy.canary_settings.filter(environment=environment).select_related("changed_by")[:50],
        "kill_switch": environment.kill_switch_engaged,
    }


@permission_required("rollout.view_canarysetting", raise_exception=True)
def policy_rollout(request, name, environment):
    policy = get_object_or_404(Policy, name=name)
    environment = get_object_or_404(Environment, name=environment)
    if request.method == "POST":
        if not request.user.has_perm("rollout.add_canarysetting"):
            raise PermissionDenied
        form = RolloutForm(request.POST)
        if form.is_valid() and not form.cleaned_data["reason"]:
            form.add_error("reason", "Say why you change the rollout; it is kept in the history.")
        if form.is_valid():
            services.change_rollout(policy, environment, form.rollout(), changed_by=request.user,
                                  reason=form.cleaned_data["reason"])
            messages.success(request, f"Rollout of {policy.name} in {environment} saved; OPA gets it now.")
            return redirect("rollout:policy", name=policy.name, environment=environment.name)
    else:
        form = RolloutForm.for_rollout(canary.current_rollout(policy, environment))
    return render(request, "rollout/policy.html", _rollout_context(policy, environment, form))


@require_POST
@permission_required("rollout.view_canarysetting", raise_exception=True)
def preview(request, name, environment):
    """htmx: what the proposed rollout would have done to the last 24 hours of decisions."""
    policy = get_object_or_404(Policy, name=name)
    environment = get_object_or_404(Environment, name=environment)
    form = RolloutForm(request.POST)
    current_rollout = canary.current_rollout(policy, environment)
    since = timezone.now() - timedelta(hours=24)
    if form.is_valid():  # both previews replay the same decisions, read once
        proposed = canary.previewable(request.user, form.rollout(), current_rollout)
        result, current = canary.preview(policy, environment, [proposed, current_rollout], since=since)
    else:
        result, (current,) = None, canary.preview(policy, environment, [current_rollout], since=since)
    return render(request, "rollout/_preview.html", {
        "form": form, "preview": result, "current": current, "environment": environment,
        "aggregate_only": not request.user.has_perm(canary.READ_DECISIONS)})
