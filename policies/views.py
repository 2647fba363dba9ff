"""Policy pages: list, detail, new policy, new version, version page, publish."""
from django.contrib import messages
from django.contrib.auth.decorators import permission_required
from django.db.models import Prefetch
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_POST

from . import services
from .forms import PolicyForm, VersionForm
from .models import Policy, PolicyVersion, Publication
from .rego import RegoCompileError


def _form_error(form, exc: Exception) -> None:
    if isinstance(exc, RegoCompileError):
        for error in exc.errors:
            form.add_error("source", f"{error.file}, line {error.row}: {error.message}")
    else:
        form.add_error(None, str(exc))


@permission_required("policies.view_policy", raise_exception=True)
def policy_list(request):
    policies = Policy.objects.select_related("active_version").prefetch_related(
        Prefetch("versions", queryset=PolicyVersion.objects.only("id", "policy_id", "number", "created_at"))
    )
    return render(request, "policies/policy_list.html", {"policies": policies})


@permission_required("policies.add_policy", raise_exception=True)
def policy_create(request):
    form = PolicyForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            policy = services.create_policy(author=request.user, **form.cleaned_data)
        except (RegoCompileError, services.VersionRefused) as exc:
            _form_error(form, exc)
        else:
            messages.success(request, f"Policy {policy.name} created with version 1.")
            return redirect("policies:detail", name=policy.name)
    return render(request, "policies/policy_form.html", {"form": form})


@permission_required("policies.view_policy", raise_exception=True)
def policy_detail(request, name):
    policy = get_object_or_404(Policy.objects.select_related("active_version"), name=name)
    versions = policy.versions.select_related("author")
    publications = (
        Publication.objects.filter(version__policy=policy).select_related("version", "requested_by")[:20]
    )
    return render(
        request, "policies/policy_detail.html",
        {"policy": policy, "versions": versions, "publications": publications},
    )


@permission_required("policies.add_policyversion", raise_exception=True)
def version_create(request, name):
    policy = get_object_or_404(Policy, name=name)
    latest = policy.latest_version
    form = VersionForm(request.POST or None, initial={"source": latest.source if latest else ""})
    if request.method == "POST" and form.is_valid():
        try:
            version = services.save_version(policy, author=request.user, **form.cleaned_data)
        except (RegoCompileError, services.VersionRefused) as exc:
            _form_error(form, exc)
        else:
            messages.success(request, f"Saved version {version.number}.")
            return redirect("policies:version", name=policy.name, number=version.number)
    return render(request, "policies/version_form.html", {"policy": policy, "form": form})


@permission_required("policies.view_policyversion", raise_exception=True)
def version_detail(request, name, number):
    version = get_object_or_404(
        PolicyVersion.objects.select_related("policy", "author"), policy__name=name, number=number
    )
    return render(request, "policies/version_detail.html", {"version": version, "policy": version.policy})


@permission_required("policies.view_publication", raise_exception=True)
def version_publications(request, name, number):
    """The publications partial; htmx polls it while a push is in flight."""
    version = get_object_or_404(PolicyVersion.objects.select_related("policy"), policy__name=name, number=number)
    return render(request, "policies/_publications.html", {"version": version, "policy": version.policy})


@require_POST
@permission_required("policies.publish_policyversion", raise_exception=True)
def version_publish(request, name, number):
    version = get_object_or_404(PolicyVersion, policy__name=name, number=number)
    services.request_publication(version, requested_by=request.user)
    if request.htmx:
        return version_publications(request, name, number)
    messages.info(request, f"Publishing version {version.number} to OPA.")
    return redirect("policies:version", name=name, number=number)
