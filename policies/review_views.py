"""Pages for reviewing a version: diff, publication requests and their approval, rollback,
retirement, and the impact replay. The rules live in review.py and replay.py."""
from django.contrib import messages
from django.contrib.auth.decorators import permission_required
from django.http import Http404
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_POST

from core.opa.client import OpaError
from fleet.models import Environment

from . import replay, review
from .diffs import version_diff
from .forms import ReasonForm
from .models import Policy, PolicyVersion, PublishRequest
from .services import PublishRefused
from .views import review_context


def _version(name, number):
    return get_object_or_404(PolicyVersion.objects.select_related("policy", "author"), policy__name=name,
                             number=number)


def _reason(request) -> str:
    form = ReasonForm(request.POST)
    return form.cleaned_data["reason"] if form.is_valid() else ""


def _environment(request) -> Environment | None:
    """The environment named in the form; None (the default one) when none is named."""
    name = request.POST.get("environment", "").strip()
    if not name:
        return None
    environment = Environment.objects.filter(name=name).first()
    if environment is None:
        raise PublishRefused(f"there is no environment named {name!r}")
    return environment


def _after(request, version, ok: str | None, refused: Exception | None):
    """htmx swaps the publishing card (showing any refusal in it); a plain form post redirects."""
    if request.htmx:
        return render(request, "policies/_publications.html", {
            "version": version, "policy": version.policy, "refused": refused and str(refused),
            **review_context(request, version),
        })
    if refused is not None:
        messages.error(request, str(refused))
    else:
        messages.success(request, ok)
    return redirect("policies:version", name=version.policy.name, number=version.number)


@permission_required("policies.view_policyversion", raise_exception=True)
def diff(request, name, number):
    version = _version(name, number)
    try:
        against = int(request.GET.get("against", version.number - 1))
    except ValueError:
        raise Http404("no such version")
    other = _version(name, against)
    return render(request, "policies/version_diff.html", {
        "version": version, "other": other, "policy": version.policy, "diff": version_diff(version, other),
        "others": version.policy.versions.exclude(pk=version.pk).values_list("number", flat=True),
    })


@require_POST
@permission_required("policies.publish_policyversion", raise_exception=True)
def request_publish(request, name, number):
    version = _version(name, number)
    try:
        asked = review.request_publish(version, requested_by=request.user, reason=_reason(request),
                                       environment=_environment(request))
    except PublishRefused as exc:
        return _after(request, version, None, exc)
    return _after(request, version, f"Asked for version {version.number} to be published "
                                    f"to {asked.environment}; "
                                    "someone other than you and its author must approve.", None)


def _request(name, number, request_id):
    return get_object_or_404(PublishRequest.objects.select_related("version__policy"), pk=request_id,
                             version__policy__name=name, version__number=number)


@require_POST
@permission_required("policies.publish_policyversion", raise_exception=True)
def approve(request, name, number, request_id):
    publish_request = _request(name, number, request_id)
    try:
        review.approve(publish_request, approved_by=request.user, note=request.POST.get("reason", ""))
    except PublishRefused as exc:
        return _after(request, publish_request.version, None, exc)
    return _after(request, publish_request.version,
                  f"Approved: publishing version {number} to {publish_request.environment or 'OPA'}.", None)


@require_POST
@permission_required("policies.publish_policyversion", raise_exception=True)
def reject(request, name, number, request_id):
    publish_request = _request(name, number, request_id)
    try:
        review.reject(publish_request, rejected_by=request.user, reason=_reason(request))
    except PublishRefused as exc:
        return _after(request, publish_request.version, None, exc)
    return _after(request, publish_request.version, f"Rejected the request to publish version {number}.", None)


@require_POST
@permission_required("policies.rollback_policy", raise_exception=True)
def rollback(request, name):
    policy = get_object_or_404(Policy, name=name)
    try:
        publication = review.rollback(policy, rolled_back_by=request.user, reason=_reason(request),
                                      environment=_environment(request))
    except PublishRefused as exc:
        messages.error(request, str(exc))
    else:
        messages.success(request, f"Rolling {publication.environment} back to version {publication.version.number}.")
    return redirect("policies:detail", name=name)


@require_POST
@permission_required("policies.retire_policy", raise_exception=True)
def retire(request, name):
    policy = get_object_or_404(Policy, name=name)
    try:
        review.retire(policy, retired_by=request.user, reason=_reason(request))
    except (PublishRefused, OpaError) as exc:
        messages.error(request, f"Not retired: {exc}")
    else:
        messages.success(request, f"Retired {policy.name}: no environment runs it any more.")
    return redirect("policies:detail", name=name)


@require_POST
@permission_required("policies.view_policyversion", raise_exception=True)
@permission_required("core.view_decision", raise_exception=True)
def replay_impact(request, name, number):
    version = _version(name, number)
    context = {"version": version, "policy": version.policy, "form_values": request.POST}
    try:
        environment = _environment(request)
        context["report"] = replay.replay_version(version, last=request.POST.get("last"),
                                                  since=request.POST.get("since"), until=request.POST.get("until"),
                                                  environment=environment)
    except (replay.ReplayRefused, PublishRefused) as exc:
        context["error"] = str(exc)
    template = "policies/_replay.html" if request.htmx else "policies/replay_page.html"
    return render(request, template, context)
