"""Exception pages: lists by status, request form, and the approval page."""
from datetime import timedelta

from django.contrib import messages
from django.contrib.auth.decorators import permission_required
from django.core.exceptions import PermissionDenied, ValidationError
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_POST

from core.models import Decision
from fleet.models import Environment

from . import exceptions as policy_exceptions
from .forms import ExceptionForm
from .models import PolicyException

TABS = {
    "active": ("Active", lambda qs: qs.active()),
    "pending": ("Pending approval", lambda qs: qs.pending()),
    "expiring": ("Expiring within 7 days", lambda qs: qs.expiring_within(timedelta(days=7))),
    "expired": ("Expired", lambda qs: qs.expired().order_by("-expires_at")),
}


@permission_required("rollout.view_policyexception", raise_exception=True)
def exception_list(request):
    tab = request.GET.get("status", "active")
    if tab not in TABS:
        tab = "active"
    base = PolicyException.objects.select_related("policy", "environment", "requested_by", "approved_by")
    return render(request, "rollout/exceptions/list.html", {
        "tabs": [(key, label, selector(base).count()) for key, (label, selector) in TABS.items()],
        "tab": tab, "exceptions": TABS[tab][1](base),
    })


@permission_required("rollout.add_policyexception", raise_exception=True)
def exception_create(request):
    form = ExceptionForm(request.POST or None, initial={"environment": Environment.objects.default()})
    if request.method == "POST" and form.is_valid():
        try:
            exception = policy_exceptions.request_exception(requested_by=request.user, **form.cleaned_data)
        except ValidationError as exc:
            form.add_error(None, exc)
        else:
            messages.success(request, "Exception requested. It applies once another security admin approves it.")
            return redirect("exceptions:detail", pk=exception.pk)
    return render(request, "rollout/exceptions/form.html", {"form": form})


@permission_required("rollout.view_policyexception", raise_exception=True)
def exception_detail(request, pk):
    exception = get_object_or_404(
        PolicyException.objects.select_related("policy", "environment", "requested_by", "approved_by"), pk=pk
    )
    changed = Decision.objects.filter(exception_ids__contains=[exception.pk]).select_related("policy", "version")
    # Which decisions it waived (who, what, why) is audit-trail data: without that permission, the count.
    reads_decisions = request.user.has_perm("core.view_decision")
    return render(request, "rollout/exceptions/detail.html", {
        "exception": exception, "decisions": changed[:50] if reads_decisions else None,
        "decision_count": changed.count(),
        "can_approve": (request.user.has_perm("rollout.approve_policyexception")
                        and request.user.pk != exception.requested_by_id),
    })


@require_POST
@permission_required("rollout.approve_policyexception", raise_exception=True)
def exception_decide(request, pk, action):
    exception = get_object_or_404(PolicyException, pk=pk)
    try:
        if action == "approve":
            policy_exceptions.approve_exception(exception, approved_by=request.user)
            messages.success(request, "Approved. OPA applies the exception within seconds.")
        else:
            policy_exceptions.revoke_exception(exception, revoked_by=request.user)
            messages.warning(request, "Revoked. OPA stops applying the exception within seconds.")
    except (PermissionDenied, ValidationError) as exc:
        messages.error(request, " ".join(getattr(exc, "messages", [str(exc)])))
    return redirect("exceptions:detail", pk=pk)
