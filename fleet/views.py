"""The environments page: each environment's delivery, its OPA instances with their health
and active bundle revision (from their status reports), their tokens, and drift alerts; the public
key bundles are signed with, and for pull environments the OPA configuration that requires it.

Security admins issue, rotate and revoke the instances' tokens here, and decommission an instance
(fleet/instances.py) by typing its name. A new token is shown once, on the page that answers
the POST (never stored in a session or a message), and never again."""
from django.contrib import messages
from django.contrib.auth.decorators import permission_required
from django.db import transaction
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_POST

from . import credentials as opa_credentials
from . import instances, opa_authz
from .delivery import signing, storage
from .models import DriftAlert, Environment, OpaInstance

MANAGE = "fleet.manage_opa_credentials"


@permission_required("fleet.view_environment", raise_exception=True)
def environments(request):
    Environment.objects.default()  # the configured OPA always has an environment to show
    opa_api = request.build_absolute_uri("/api/v1/opa")
    rows = [
        {"environment": environment, "targets": environment.targets(),
         "decommissioned": environment.decommissioned_instances(),
         "running": environment.active_versions.select_related("policy", "version").order_by("policy__name"),
         "alerts": environment.drift_alerts.select_related("policy", "instance", "repush")[:20],
         "opa_config": _opa_config(environment, opa_api),
         "bucket_url": storage.object_url(environment)}
        for environment in Environment.objects.prefetch_related("instances__credentials",
                                                                "instances__decommissioned_by")
    ]
    open_alerts = DriftAlert.objects.filter(resolved_at__isnull=True).select_related("policy", "environment")
    return render(request, "fleet/environments.html", {
        "rows": rows, "open_alerts": open_alerts, "can_manage": request.user.has_perm(MANAGE),
        "signing": {"public_key": signing.public_key_pem(), "fingerprint": signing.fingerprint(),
                    "algorithm": signing.ALGORITHM, "key_id": signing.KEY_ID}})


def _opa_config(environment, opa_api: str) -> str:
    if not environment.is_pull:
        return ""
    bucket = storage.bucket_location(environment) if environment.in_object_storage else None
    return signing.opa_config(environment.name, opa_api, bucket=bucket)


def _instance(environment, instance):
    return get_object_or_404(OpaInstance.objects.select_related("environment"),
                             environment__name=environment, name=instance)


def _token_shown_once(request, instance, token, added=False, returning=False):
    """The one answer that carries the token (the views add Cache-Control: no-store)."""
    return render(request, "fleet/token_issued.html",
                  {"instance": instance, "token": token, "added": added, "returning": returning})


@never_cache
@require_POST
@permission_required(MANAGE, raise_exception=True)
def add_instance(request, environment):
    environment = get_object_or_404(Environment, name=environment)
    name, url = request.POST.get("name", "").strip(), request.POST.get("url", "").strip()
    problem = opa_credentials.instance_problem(environment, name, url)
    if problem:
        messages.error(request, problem)
        return redirect("fleet:environments")
    returning = environment.instances.decommissioned().filter(name=name).exists()
    instance, token = opa_credentials.add_instance(environment, name, url, by=request.user)
    return _token_shown_once(request, instance, token, added=True, returning=returning)


@never_cache
@require_POST
@permission_required(MANAGE, raise_exception=True)
def issue_token(request, environment, instance):
    instance = _instance(environment, instance)
    try:
        _, token = opa_credentials.issue_token(instance, by=request.user)
    except instances.InstanceDecommissioned as exc:
        messages.error(request, str(exc))
        return redirect("fleet:environments")
    return _token_shown_once(request, instance, token)


@require_POST
@permission_required(MANAGE, raise_exception=True)
def revoke_token(request, environment, instance, credential):
    instance = _instance(environment, instance)
    credential = get_object_or_404(instance.credentials, pk=credential)
    opa_credentials.revoke(credential, by=request.user)
    messages.warning(request, f"Token {credential.pk} of {instance} revoked: an OPA still using it gets 401 "
                              "and keeps its decision logs until it has a valid token.")
    return redirect("fleet:environments")


@require_POST
@permission_required(MANAGE, raise_exception=True)
def rotate_gavel_token(request, environment, instance):
    instance = _instance(environment, instance)
    try:
        with transaction.atomic():
            instance = opa_authz.start_rotation(instance)
            opa_authz.enqueue_rotation(instance)
    except opa_authz.RotationRefused as exc:
        messages.error(request, str(exc))
    else:
        messages.success(request, f"Rolling Gavel's token to {instance}: OPA learns the new one before Gavel "
                                  "switches, then forgets the old one.")
    return redirect("fleet:environments")


@require_POST
@permission_required(MANAGE, raise_exception=True)
def decommission_instance(request, environment, instance):
    """Take an instance out of service. The form asks for its name again: nothing to undo by a
    stray click (re-adding the name brings it back, with a new token)."""
    instance = _instance(environment, instance)
    if request.POST.get("confirm", "").strip() != instance.name:
        messages.error(request, f"Type the instance's name, {instance.name}, to decommission it.")
        return redirect("fleet:environments")
    instances.decommission(instance, by=request.user)
    messages.success(request, f"{instance} decommissioned: its tokens are revoked and Gavel no longer publishes to "
                              "it or waits for it. Its publications, drift alerts and decisions stay.")
    return redirect("fleet:environments")
