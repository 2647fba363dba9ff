"""The audit trail: a filtered, paginated list of decisions and a page per decision."""
import json

from django.contrib.auth.decorators import permission_required
from django.shortcuts import get_object_or_404, render

from . import charts, ingest_health
from .pagination import COUNT_LIMIT, CappedPaginator
from .filters import DecisionFilter
from .models import Decision

PAGE_SIZE = 50


@permission_required("audit.view_decision", raise_exception=True)
def decision_list(request):
    filterset = DecisionFilter(request.GET, queryset=Decision.objects.select_related("policy", "version"))
    decisions = filterset.qs if filterset.is_valid() else Decision.objects.none()
    page = CappedPaginator(decisions, PAGE_SIZE).get_page(request.GET.get("page"))
    query = request.GET.copy()
    query.pop("page", None)
    context = {"filter": filterset, "page": page, "query": query.urlencode(), "count_limit": COUNT_LIMIT}
    # htmx asks only for the results, so filtering refreshes the table in place.
    template = "audit/_results.html" if request.htmx and not request.htmx.boosted else "audit/decision_list.html"
    return render(request, template, context)


@permission_required("audit.view_decision", raise_exception=True)
def decision_detail(request, decision_id):
    decision = get_object_or_404(Decision.objects.select_related("policy", "version", "batch"), decision_id=decision_id)
    return render(request, "audit/decision_detail.html", {
        "decision": decision,
        # Pretty-printed here, escaped by the template like any other text.
        "input_json": json.dumps(decision.input, indent=2, ensure_ascii=False, sort_keys=True),
        "result_json": json.dumps(decision.result, indent=2, ensure_ascii=False, sort_keys=True),
    })


@permission_required("audit.view_decision", raise_exception=True)
def dashboard(request):
    """Charts of the decisions the filters select; every point links back to its search."""
    filterset = DecisionFilter(request.GET, queryset=Decision.objects.all())
    source = charts.source_for(filterset) if filterset.is_valid() else charts.RawRows(Decision.objects.none())
    base_query = {k: v for k, v in request.GET.items() if v}
    return render(request, "audit/dashboard.html", {
        "filter": filterset, "charts": charts.dashboard(source, base_query),
        "total": source.total(), "search_url": charts.search_url(base_query),
        "source": type(source).__name__,
    })


@permission_required("audit.view_decision", raise_exception=True)
def ingest_status(request):
    """How decision-log ingest keeps up: backlog, lag, refusals. htmx refreshes it in place."""
    template = "audit/_ingest_status.html" if request.htmx else "audit/ingest_status.html"
    return render(request, template, {"health": ingest_health.health()})
