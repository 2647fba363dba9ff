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
    "rejected": ("Rejected", lambda qs: qs.rejected()),
    "revoked": ("Revoked", lambda qs: qs.revoked()),
}
RELATED = ("policy", "environment", "requested_by", "approved_by", "rejected_by", "revoked_by")


@permission_required("rollout.view_policyexception", raise_exception=True)
def exception_list(request):
    tab = request.GET.get("status", "active")
    if tab not in TABS:
        tab = "active"
    base = PolicyException.objects.select_related(*RELATED)
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
            messages.success(request, f"Exception requested. It applies once "
                                      f"{policy_exceptions.awaiting_whom(exception, request.user)} approves it.")
            return redirect("exceptions:detail", pk=exception.pk)
    return render(request, "rollout/exceptions/form.html", {"form": form})


@permission_required("rollout.view_policyexception", raise_exception=True)
def exception_detail(request, pk):
    exception = get_object_or_404(
        PolicyException.objects.select_related(*RELATED), pk=pk
    )
    changed = Decision.objects.filter(exception_ids__contains=[exception.pk]).select_related("policy", "version")
    # Which decisions it waived (who, what, why) is audit-trail data: without that permission, the count.
    reads_decisions = request.user.has_perm("core.view_decision")
    return render(request, "rollout/exceptions/detail.html", {
        "exception": exception, "decisions": changed[:50] if reads_decisions else None,
        "decision_count": changed.count(),
        "can_approve": (request.user.has_perm("rollout.approve_policyexception")
                        and request.user.pk != exception.requested_by_id),
        "awaiting": policy_exceptions.awaiting_whom(exception, request.user),
    })


# action -> (the service, the form field it needs, asks for confirmation first, what the page says after)
DECISIONS = {
    "approve": (lambda e, user, text: policy_exceptions.approve_exception(e, approved_by=user, comment=text),
                "comment", True, "Approved. OPA applies the exception within seconds."),
    "reject": (lambda e, user, text: policy_exceptions.reject_exception(e, rejected_by=user, comment=text),
               "comment", False, "Rejected. The requester sees your comment on this page."),
    "revoke": (lambda e, user, text: policy_exceptions.revoke_exception(e, revoked_by=user, reason=text),
               "reason", True, "Revoked. OPA stops applying the exception within seconds."),
}


@require_POST
@permission_required("rollout.approve_policyexception", raise_exception=True)
def exception_decide(request, pk, action):
    """Approve or revoke after a confirmation page; reject at once. Each needs its comment or reason."""
    exception = get_object_or_404(PolicyException.objects.select_related(*RELATED), pk=pk)
    decide, field, confirm_first, done = DECISIONS[action]
    text = request.POST.get(field, "").strip()
    if text and confirm_first and request.POST.get("confirmed") != "yes":
        return render(request, "rollout/exceptions/confirm.html",
                      {"exception": exception, "action": action, "field": field, "text": text})
    try:
        decide(exception, request.user, text)
    except (PermissionDenied, ValidationError) as exc:
        said = " ".join(getattr(exc, "messages", [str(exc)]))
        messages.error(request, f"{said[:1].upper()}{said[1:]}.")
    else:
        (messages.warning if action == "revoke" else messages.success)(request, done)
    return redirect("exceptions:detail", pk=pk)
