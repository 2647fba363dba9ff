"""The environments page: each environment's delivery, its OPA instances with their health
and active bundle revision (from their status reports), and drift alerts."""
from django.contrib.auth.decorators import permission_required
from django.shortcuts import render

from . import canary
from .models import DriftAlert, Environment


@permission_required("policies.view_environment", raise_exception=True)
def environments(request):
    canary.default_environment()  # the configured OPA always has an environment to show
    rows = [
        {"environment": environment, "targets": environment.targets(),
         "running": environment.active_versions.select_related("policy", "version").order_by("policy__name"),
         "alerts": environment.drift_alerts.select_related("policy", "instance", "repush")[:20]}
        for environment in Environment.objects.prefetch_related("instances")
    ]
    open_alerts = DriftAlert.objects.filter(resolved_at__isnull=True).select_related("policy", "environment")
    return render(request, "policies/fleet/environments.html", {"rows": rows, "open_alerts": open_alerts})
