"""The reviewers' queue: pending held actions by risk and age, and a page per action."""
from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import permission_required
from django.core.exceptions import PermissionDenied, ValidationError
from django.core.paginator import Paginator
from django.http import HttpResponseBadRequest
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_POST

from core.csv_stream import stream_csv
from core.display.json_text import shown

from . import services as approvals
from .filters import HeldActionFilter, save_filter
from .models import HeldAction, SavedFilter
from .wording import EXPORT_HEADER, describe, export_rows, risk_explained

QUEUE_PAGE = 25  # cards per page; the filters and the page number live in the URL
BULK_MAX = 100  # held actions one bulk review may name

TABS = {
    "pending": ("Waiting for review", {"status": HeldAction.Status.PENDING}),
    "approved": ("Approved", {"status": HeldAction.Status.APPROVED}),
    "rejected": ("Rejected", {"status": HeldAction.Status.REJECTED}),
    "expired": ("Expired", {"status": HeldAction.Status.EXPIRED}),
}


def _with_words(items):
    """What a card shows beside the stored fields: the headline, the risk in words, the request as JSON."""
    for held in items:
        held.request_words = describe(held.input)
        held.risk_words = risk_explained(held.input, held.risk)
        held.request_json, held.request_cut = shown(held.input)
    return items


def _card(request, held, **extra):
    held = HeldAction.objects.select_related("policy").prefetch_related("votes__reviewer").get(pk=held.pk)
    return render(request, "approvals/_held_card.html", {"held": _with_words([held])[0], **extra})


@permission_required("approvals.view_heldaction", raise_exception=True)
def queue(request):
    tab = request.GET.get("status") if request.GET.get("status") in TABS else "pending"
    base = HeldAction.objects.select_related("policy").prefetch_related("votes__reviewer")
    filterset = HeldActionFilter({**request.GET.dict(), "status": tab}, queryset=base)
    items = filterset.qs if filterset.is_valid() else base.none()
    if tab != "pending":
        items = items.order_by("-decided_at", "-id")  # the heldaction_decided index
    query = request.GET.copy()
    query["status"] = tab
    query.pop("page", None)
    page = Paginator(items, QUEUE_PAGE).get_page(request.GET.get("page"))
    return render(request, "approvals/queue.html", {
        "tab": tab, "tabs": [(key, label, base.filter(**f).count()) for key, (label, f) in TABS.items()],
        "items": _with_words(list(page.object_list)), "page": page, "filter": filterset,
        "query": query.urlencode(),
        # An empty list reads differently when the search, not the queue, is what is empty.
        "filtered": any(value for key, value in request.GET.items() if key not in ("status", "page")),
        "timeout_minutes": settings.GAVEL_APPROVAL_TIMEOUT_MINUTES,
        "here": request.get_full_path(),
        "saved": SavedFilter.objects.filter(owner=request.user),
    })


@require_POST
@permission_required("approvals.view_heldaction", raise_exception=True)
def save_search(request):
    """Save the queue's current search under a name (the person's own), then show it applied."""
    try:
        saved = save_filter(request.user, request.POST.get("name", ""), request.POST.get("query", ""))
    except ValidationError as refused:
        messages.error(request, " ".join(refused.messages))
        return redirect(f"/approvals/?{request.POST.get('query', '')}" if request.POST.get("query") else "/approvals/")
    messages.success(request, f"Search saved as \u201c{saved.name}\u201d.")
    return redirect(f"/approvals/?{saved.query}")


@require_POST
@permission_required("approvals.view_heldaction", raise_exception=True)
def delete_search(request, pk):
    saved = get_object_or_404(SavedFilter, pk=pk, owner=request.user)  # someone else's is not found
    saved.delete()
    messages.success(request, f"Saved search \u201c{saved.name}\u201d deleted.")
    return redirect("approvals:queue")


@permission_required("approvals.view_heldaction", raise_exception=True)
def detail(request, decision_id):
    held = get_object_or_404(HeldAction.objects.select_related("policy", "logged_decision"), decision_id=decision_id)
    _with_words([held])
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
            return _card(request, held, error=error)
        messages.error(request, error)
        return redirect("approvals:detail", decision_id=decision_id)
    if request.htmx:
        return _card(request, held)
    messages.success(request, f"Recorded: {held.get_status_display().lower()}.")
    return redirect("approvals:detail", decision_id=decision_id)


@permission_required("approvals.view_heldaction", raise_exception=True)
def state(request, decision_id):
    """A card's state and history, which htmx polls while the action waits: a decision made
    elsewhere (another reviewer, expiry, the bulk form) shows without a reload."""
    held = get_object_or_404(HeldAction.objects.prefetch_related("votes__reviewer"), decision_id=decision_id)
    return render(request, "approvals/_held_state.html", {"held": held})


@require_POST
@permission_required("approvals.review_heldaction", raise_exception=True)
def bulk_review(request):
    """One verdict and comment for the checked cards, each through the same review as one card."""
    ids = request.POST.getlist("held")[:BULK_MAX]
    approve = request.POST.get("verdict") == "approve"
    back = request.POST.get("next", "")
    back = back if back.startswith("/approvals/") else "/approvals/"
    if not ids:
        messages.error(request, "Tick the held actions to review first.")
        return redirect(back)
    done, refused = approvals.review_many(ids, reviewer=request.user, approve=approve,
                                          comment=request.POST.get("comment", ""))
    if done:
        messages.success(request, f"{'Approved' if approve else 'Rejected'} {len(done)} held action"
                                  f"{'' if len(done) == 1 else 's'}: "
                                  + ", ".join(f"{held.decision_id} ({held.get_status_display().lower()})"
                                              for held in done) + ".")
    for decision_id, why in refused.items():
        messages.error(request, f"{decision_id}: {why}")
    return redirect(back)


@permission_required("core.export_decision", raise_exception=True)
def export_csv(request):
    """Held actions matching the filters (the same as the API's), with every review, as CSV."""
    filterset = HeldActionFilter(request.GET, queryset=HeldAction.objects.order_by("created_at", "id"))
    if not filterset.is_valid():
        return HttpResponseBadRequest(f"Fix the filters: {filterset.errors.as_text()}", content_type="text/plain")
    return stream_csv("approvals.csv", EXPORT_HEADER, export_rows(filterset.qs))
