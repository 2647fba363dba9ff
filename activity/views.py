"""The activity log page: who changed what, when, before -> after. Read-only, like the log."""
from django.contrib.auth.decorators import permission_required
from django.shortcuts import render

from . import entries, paging
from .filters import ActivityFilter

PAGE_SIZE = 50


@permission_required("activity.view_activityentry", raise_exception=True)
def activity_list(request):
    filterset = ActivityFilter(request.GET)
    page = paging.LogPaginator(filterset.keys(), PAGE_SIZE).get_page(request.GET.get("page"))
    rows = entries.rows(entries.built(page.object_list))
    query = request.GET.copy()
    query.pop("page", None)
    context = {"filter": filterset, "page": page, "rows": rows, "query": query.urlencode(),
               "count_limit": paging.COUNT_LIMIT, "before": filterset.form.cleaned_data.get("before"),
               "newest": _with(query, before=None)}
    if page.paginator.capped and not page.has_next() and rows:
        # Past the counted pages: the entries after this page's last, counted afresh.
        context["older"] = _with(query, before=rows[-1].id)
    # htmx asks only for the table, so filtering refreshes it in place.
    template = "activity/_results.html" if request.htmx and not request.htmx.boosted else "activity/list.html"
    return render(request, template, context)


def _with(query, **changed) -> str:
    """The query string with these parameters set (None: left out)."""
    query = query.copy()
    for name, value in changed.items():
        query.pop(name, None)
        if value is not None:
            query[name] = value
    return query.urlencode()
