"""Policy pages: list, detail, new policy, new version, version page.
Review, publishing, rollback, retirement and replay pages are in review_views.py."""
import json

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import permission_required
from django.db.models import Prefetch
from django.shortcuts import get_object_or_404, redirect, render

from fleet import states
from fleet.models import Environment
from policies.rego.check import RegoCompileError

from . import review, services
from .authoring import check as draft_check
from .forms import PolicyForm, ReasonForm, VersionForm
from .models import ActiveVersion, Policy, PolicyVersion, Publication, PublishRequest


def _form_error(form, exc: Exception) -> list[dict]:
    """Put a failed save's errors on the form; return them located, for the editor to show at their lines."""
    if isinstance(exc, RegoCompileError):
        for error in exc.errors:
            # Errors located in the tests module belong under the Tests field.
            field = "tests" if error.file.endswith("_test.rego") else "source"
            form.add_error(field, f"{error.file}, line {error.row}: {error.message}")
        return [vars(d) for d in draft_check.from_compile_error(exc)]
    form.add_error(None, str(exc))
    return []


@permission_required("policies.view_policy", raise_exception=True)
def policy_list(request):
    policies = Policy.objects.prefetch_related(
        Prefetch("versions", queryset=PolicyVersion.objects.only("id", "policy_id", "number", "created_at")),
        Prefetch("active_versions", queryset=ActiveVersion.objects.select_related("environment", "version")),
    )
    return render(request, "policies/policy_list.html", {"policies": policies})


@permission_required("policies.add_policy", raise_exception=True)
def policy_create(request):
    form = PolicyForm(request.POST or None)
    diagnostics = []
    if request.method == "POST" and form.is_valid():
        try:
            policy = services.create_policy(author=request.user, **form.cleaned_data)
        except (RegoCompileError, services.VersionRefused) as exc:
            diagnostics = _form_error(form, exc)
        else:
            messages.success(request, f"Policy {policy.name} created with version 1.")
            return redirect("policies:detail", name=policy.name)
    return render(request, "policies/policy_form.html", {"form": form, "diagnostics_json": json.dumps(diagnostics)})


@permission_required("policies.view_policy", raise_exception=True)
def policy_detail(request, name):
    policy = get_object_or_404(Policy, name=name)
    versions = policy.versions.select_related("author", "test_run").prefetch_related("lint_warnings")
    publications = (
        Publication.objects.filter(version__policy=policy)
        .select_related("version", "requested_by", "environment", "instance")[:20]
    )
    active = {row.version_id: row for row in policy.active_versions.select_related("environment")}
    return render(request, "policies/policy_detail.html", {
        "policy": policy, "versions": [(v, [a.environment.name for a in active.values() if a.version_id == v.pk])
                                       for v in versions],
        "publications": publications,
        "history": policy.publish_events.select_related("actor", "version", "environment")[:50],
        "last_decided_at": review.last_decided_at(policy),
        "retire_blocker": review.retire_blocker(policy), "retire_after_days": settings.GAVEL_RETIRE_AFTER_DAYS,
        "reason_form": ReasonForm(),
        "environment_states": states.environment_states(policy) if active or publications else [],
    })


@permission_required("policies.add_policyversion", raise_exception=True)
def version_create(request, name):
    policy = get_object_or_404(Policy, name=name)
    latest = policy.latest_version
    form = VersionForm(request.POST or None, initial={"source": latest.source if latest else "",
                                                      "tests": latest.tests if latest else ""})
    diagnostics = []
    if request.method == "POST" and form.is_valid():
        try:
            version = services.save_version(policy, author=request.user, **form.cleaned_data)
        except (RegoCompileError, services.VersionRefused) as exc:
            diagnostics = _form_error(form, exc)
        else:
            messages.success(request, f"Saved version {version.number}.")
            return redirect("policies:version", name=policy.name, number=version.number)
    return render(request, "policies/version_form.html", {"policy": policy, "form": form,
                                                          "diagnostics_json": json.dumps(diagnostics)})


@permission_required("policies.view_policyversion", raise_exception=True)
def version_detail(request, name, number):
    version = get_object_or_404(
        PolicyVersion.objects.select_related("policy", "author"), policy__name=name, number=number
    )
    test_run = getattr(version, "test_run", None) if version.tests.strip() else None
    lint_warnings = list(version.lint_warnings.all())
    return render(request, "policies/version_detail.html", {
        "version": version, "policy": version.policy, "test_run": test_run, "lint_warnings": lint_warnings,
        # The numbered source marks the lines lint warns about and the failing tests' lines.
        "lint_rows": {w.row for w in lint_warnings},
        "failing_rows": {t.get("row") for t in (test_run.results if test_run else [])
                         if t.get("status") in ("fail", "error")},
        "others": version.policy.versions.exclude(pk=version.pk).values_list("number", flat=True),
        **review_context(request, version),
    })


def review_context(request, version) -> dict:
    """What the publishing card needs: requests, who may act on them, the environments to
    choose from (and which run this version), and the version's history."""
    requests = version.publish_requests.select_related("requested_by", "decided_by", "publication", "environment")
    Environment.objects.default()  # the configured OPA always has an environment to choose
    return {
        "environments": Environment.objects.all(), "default_environment": settings.GAVEL_ENVIRONMENT,
        "active_in": version.active_environments,
        "publish_requests": [(r, r.status == PublishRequest.Status.PENDING and review.may_approve(r, request.user))
                             for r in requests],
        "version_history": version.policy.publish_events.filter(version=version).select_related("actor")[:30],
        "reason_form": ReasonForm(),
        "default_last": settings.GAVEL_REPLAY_DEFAULT_LAST,
        "running_versions": version.policy.active_versions.select_related("environment", "version"),
    }


@permission_required("policies.view_publication", raise_exception=True)
def version_publications(request, name, number):
    """The publications partial; htmx polls it while a push is in flight."""
    version = get_object_or_404(PolicyVersion.objects.select_related("policy"), policy__name=name, number=number)
    return render(request, "policies/_publications.html",
                  {"version": version, "policy": version.policy, **review_context(request, version)})
