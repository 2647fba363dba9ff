"""The reviewers' queue: pending held actions by risk and age, and a page per action."""
from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import permission_required
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import HttpResponseBadRequest
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_POST

from core.csv_stream import stream_csv

from . import services as approvals
from .filters import HeldActionFilter
from .models import HeldAction
from .wording import describe

QUEUE_PAGE = 100  # the page lists this many; the rest are counted and found by searching

TABS = {
    "pending": ("Waiting for review", {"status": HeldAction.Status.PENDING}),
    "approved": ("Approved", {"status": HeldAction.Status.APPROVED}),
    "rejected": ("Rejected", {"status": HeldAction.Status.REJECTED}),
    "expired": ("Expired", {"status": HeldAction.Status.EXPIRED}),
}


def _with_words(items):
    for held in items:
        held.request_words = describe(held.input)
    return items


@permission_required("approvals.view_heldaction", raise_exception=True)
def queue(request):
    tab = request.GET.get("status") if request.GET.get("status") in TABS else "pending"
    base = HeldAction.objects.select_related("policy").prefetch_related("votes__reviewer")
    filterset = HeldActionFilter({**request.GET.dict(), "status": tab}, queryset=base)
    items = filterset.qs if filterset.is_valid() else base.none()
    if tab != "pending":
        items = items.order_by("-decided_at")
    query = request.GET.copy()
    query["status"] = tab
    shown = _with_words(list(items[:QUEUE_PAGE]))
    return render(request, "approvals/queue.html", {
        "tab": tab, "tabs": [(key, label, base.filter(**f).count()) for key, (label, f) in TABS.items()],
        "items": shown, "filter": filterset, "query": query.urlencode(),
        # An empty list reads differently when the search, not the queue, is what is empty.
        "filtered": any(value for key, value in request.GET.items() if key != "status"),
        "matching": items.count() if len(shown) == QUEUE_PAGE else len(shown),
        "timeout_minutes": settings.GAVEL_APPROVAL_TIMEOUT_MINUTES,
    })


@permission_required("approvals.view_heldaction", raise_exception=True)
def detail(request, decision_id):
    held = get_object_or_404(HeldAction.objects.select_related("policy", "logged_decision"), decision_id=decision_id)
    held.request_words = describe(held.input)
    return render(request, "approvals/detail.html", {
        "held": held, "events": held.events.select_related("actor"), "votes": held.votes.select_related("reviewer"),
    })


@require_POST
@permission_required("approvals.review_heldaction", raise_exception=True)
def review(request, decision_id):
    held = get_object_or_404(HeldAction, decision_id=decision_id)
    approve = request.POST.get("verdict") == "approve"
    try:
        held = approvals.review(held, reviewer=request.user, approve=approve,
                                comment=request.POST.get("comment", ""))
    except (PermissionDenied, ValidationError) as exc:
        error = " ".join(getattr(exc, "messages", [str(exc)]))
        if request.htmx:
            held.request_words = describe(held.input)
            return render(request, "approvals/_held_card.html", {"held": held, "error": error})
        messages.error(request, error)
        return redirect("approvals:detail", decision_id=decision_id)
    if request.htmx:
        held.request_words = describe(held.input)
        return render(request, "approvals/_held_card.html", {"held": held})
    messages.success(request, f"Recorded: {held.get_status_display().lower()}.")
    return redirect("approvals:detail", decision_id=decision_id)


EXPORT_HEADER = ["decision_id", "status", "policy", "request", "requester", "reasons", "risk", "approvals",
                 "approvals_required", "reviews", "held_at", "decided_at", "expires_at", "consumed_by_decision"]


@permission_required("core.export_decision", raise_exception=True)
def export_csv(request):
    """Held actions matching the filters (the same as the API's), with every review, as CSV."""
    filterset = HeldActionFilter(request.GET, queryset=HeldAction.objects.select_related("policy")
                                 .prefetch_related("votes__reviewer").order_by("created_at"))
    if not filterset.is_valid():
        return HttpResponseBadRequest(f"Fix the filters: {filterset.errors.as_text()}", content_type="text/plain")

    def rows():
        for held in filterset.qs.iterator(chunk_size=500):
            reviews = "; ".join(f"{v.reviewer} {'approved' if v.approve else 'rejected'}: {v.comment}"
                                for v in held.votes.all())
            yield [held.decision_id, held.status, held.policy.name if held.policy else "", describe(held.input),
                   held.requester, " | ".join(held.reasons), held.risk, held.approvals, held.approvals_required,
                   reviews, held.created_at.isoformat(), held.decided_at.isoformat() if held.decided_at else "",
                   held.expires_at.isoformat(), held.consumed_by_decision]

    return stream_csv("approvals.csv", EXPORT_HEADER, rows())
