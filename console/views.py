"""The console's own pages: the home dashboard."""
from datetime import timedelta

from django.db.models import Count
from django.shortcuts import render
from django.utils import timezone

from core.models import Decision
from policies.models import Policy, Publication

from .inbox import waiting_for


def home(request):
    context = {
        "policies": Policy.objects.prefetch_related("active_versions__environment", "active_versions__version"),
        "recent_publications": Publication.objects.select_related("version__policy")[:5],
    }
    waiting = waiting_for(request.user, with_items=True)
    context.update(waiting=waiting, waiting_total=sum(w.count for w in waiting),
                   waiting_kinds=[w.label.partition("|")[2] for w in waiting])
    if request.user.has_perm("core.view_decision"):
        # On a whole minute, so each figure's link searches exactly the decisions it counts.
        since = (timezone.now() - timedelta(hours=24)).replace(second=0, microsecond=0)
        counts = dict(
            Decision.objects.filter(timestamp__gte=since).values_list("outcome").annotate(n=Count("id"))
        )
        context["outcome_counts"] = counts
        context["decisions_24h"] = sum(counts.values())
        context["since_24h"] = since.strftime("%Y-%m-%dT%H:%M")
        context["recent_decisions"] = Decision.objects.for_rows()[:8]
    return render(request, "console/home.html", context)
