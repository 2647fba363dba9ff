"""The audit trail: a filtered, paginated list of decisions, a page per decision and its explanation."""
from urllib.parse import urlencode

from django.conf import settings
from django.contrib.auth.decorators import permission_required
from django.http import Http404, HttpResponse
from django.shortcuts import get_object_or_404, redirect
from django.views.decorators.http import require_POST
from django.shortcuts import render
from django.utils import timezone

from core import facts, replica
from core.display import json_text
from core.models import Decision, LogBatch

from . import charts, explain, ingest_health, related, time_ranges
from .ingest import failures
from .filters import DecisionFilter, search_url
from .pagination import COUNT_LIMIT, CappedPaginator, Place

PAGE_SIZE = 50


@permission_required("core.view_decision", raise_exception=True)
def decision_list(request):
    def search(reads):
        # Taken before the count: an export from this page holds the decisions stored by then, the ones
        # counted (on a lagging replica, the moment it has replayed up to).
        as_of = reads.as_of
        queryset = Decision.objects.using(reads.alias).for_rows()
        filterset = DecisionFilter(request.GET, queryset=queryset)
        decisions = filterset.qs if filterset.is_valid() else queryset.none()
        paginator = CappedPaginator(decisions, PAGE_SIZE, few=DecisionFilter.finds_few(request.GET))
        page = paginator.get_page(request.GET.get("page"))
        page.object_list = list(page.object_list)  # read here, where a failing replica falls back
        return filterset, page, as_of

    reads, (filterset, page, as_of) = replica.read(search)
    query = request.GET.copy()
    query.pop("page", None)
    context = {"filter": filterset, "page": page, "query": query.urlencode(), "count_limit": COUNT_LIMIT,
               "as_of": as_of.isoformat(), "reads": reads}
    if page.paginator.capped and not page.has_next() and page.object_list:
        # Past the counted pages: the decisions after this page's last, counted afresh.
        query["before"] = str(Place.of(page.object_list[-1]))
        context["older"] = query.urlencode()
    # htmx asks only for the results, so filtering refreshes the table in place.
    template = "audit/_results.html" if request.htmx and not request.htmx.boosted else "audit/decision_list.html"
    return render(request, template, context)


FACTS = (("Environment", "environment"), ("OPA instance", "instance"), ("User", "user"), ("Agent", "agent"),
         ("Action", "action"), ("Resource", "resource"))


def _decisions(request, decision_id):
    """(the decision asked for, every stored decision with its id). One id can be stored more
    than once (another environment, another time): `?row=` picks one, else the newest."""
    same_id = list(Decision.objects.select_related("policy", "version__policy")
                   .filter(decision_id=decision_id).order_by("-timestamp", "-id"))
    if not same_id:
        raise Http404("No decision has this id.")
    chosen = next((d for d in same_id if str(d.pk) == request.GET.get("row")), same_id[0])
    return chosen, same_id


@permission_required("core.view_decision", raise_exception=True)
def decision_detail(request, decision_id):
    decision, same_id = _decisions(request, decision_id)
    everything = request.GET.get("show") == "all"
    input_json, input_cut = json_text.shown(decision.input, everything)
    result_json, result_cut = json_text.shown(decision.result, everything)
    return render(request, "audit/decision_detail.html", {
        "decision": decision,
        "same_id": same_id if len(same_id) > 1 else [],
        # Pretty-printed here, escaped by the template like any other text.
        "input_json": input_json,
        "result_json": result_json,
        "json_cut": input_cut or result_cut,
        "facts": [(label, name, getattr(decision, name)) for label, name in FACTS if getattr(decision, name)],
        "exceptions": related.exceptions_applied(decision),
        "same_user": related.same_user(decision),
        "session": facts.session_of(decision.input),
        "same_session": related.same_session(decision),
        "session_fields": settings.GAVEL_SESSION_FIELDS,
        "session_window_hours": settings.GAVEL_SESSION_WINDOW_HOURS,
    })


@permission_required("core.view_decision", raise_exception=True)
def decision_explain(request, decision_id):
    """The decision re-evaluated in OPA with its explanation: an htmx partial of the decision
    page (it calls OPA, so it is never part of the page's first render), or a page of its own."""
    decision, _ = _decisions(request, decision_id)
    try:
        context = {"decision": decision, "explanation": explain.explain(decision)}
    except explain.ExplainUnavailable as exc:
        context = {"decision": decision, "error": str(exc)}
    return render(request, "audit/_explain.html" if request.htmx else "audit/explain.html", context)


@permission_required("core.view_decision", raise_exception=True)
def dashboard(request):
    """Charts of the decisions the filters select; every point links back to its search. Under a
    relative time range (a preset) htmx refreshes the charts in place, ending at the new now."""
    now = timezone.now()
    query, preset = time_ranges.time_range({k: v for k, v in request.GET.items() if v}, now)
    base_query = {k: v for k, v in query.items() if k != "range"}

    def draw(reads):
        decisions = Decision.objects.using(reads.alias)
        filterset = DecisionFilter(query, queryset=decisions.all())
        source = (charts.source_for(filterset, using=reads.alias) if filterset.is_valid()
                  else charts.RawRows(decisions.none()))
        return {"filter": filterset, "charts": charts.dashboard(source, base_query), "total": source.total(),
                "period": charts.period(source), "source": type(source).__name__}

    reads, context = replica.read(draw)
    template = "audit/_dashboard_charts.html" if request.htmx and not request.htmx.boosted else "audit/dashboard.html"
    return render(request, template, {
        **context, "reads": reads, "search_url": search_url(base_query),
        "presets": time_ranges.presets(query, preset, now), "refresh_query": urlencode(query) if preset else "",
    })


@permission_required("core.view_decision", raise_exception=True)
def ingest_status(request):
    """How decision-log ingest keeps up: backlog, lag, refusals. htmx refreshes it in place."""
    template = "audit/_ingest_status.html" if request.htmx else "audit/ingest_status.html"
    return render(request, template, {"health": ingest_health.health()})


@permission_required("core.view_decision", raise_exception=True)
def failed_batch_download(request, pk):
    """A failed batch exactly as OPA sent it (gzip JSON), to inspect or replay elsewhere."""
    batch = get_object_or_404(LogBatch, pk=pk, status=LogBatch.Status.FAILED)
    response = HttpResponse(bytes(batch.body_gz), content_type="application/gzip")
    response["Content-Disposition"] = f'attachment; filename="gavel-batch-{batch.pk}.json.gz"'
    return response


@require_POST
@permission_required("core.retry_logbatch", raise_exception=True)
def failed_batch_retry(request, pk):
    failures.retry(get_object_or_404(LogBatch, pk=pk, status=LogBatch.Status.FAILED))
    return redirect("audit:ingest")
