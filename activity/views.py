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
    query = request.GET.copy()
    query.pop("page", None)
    context = {"filter": filterset, "page": page, "rows": entries.rows(entries.built(page.object_list)),
               "query": query.urlencode(), "count_limit": paging.COUNT_LIMIT}
    # htmx asks only for the table, so filtering refreshes it in place.
    template = "activity/_results.html" if request.htmx and not request.htmx.boosted else "activity/list.html"
    return render(request, template, context)
