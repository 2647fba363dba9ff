"""The console's own pages: the home dashboard."""
from datetime import timedelta

from django.db.models import Sum
from django.shortcuts import render
from django.utils import timezone

from core import rollups
from core.models import Decision, DecisionRollup
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
        # From the rollups (an hour's and a day's rows): counting a day of raw rows grows with the traffic.
        rows = DecisionRollup.objects.filter(rollups.covering(since, None)).order_by()
        counts = dict(rows.values_list("outcome").annotate(n=Sum("decisions")))
        context["outcome_counts"] = counts
        context["decisions_24h"] = sum(counts.values())
        context["since_24h"] = since.strftime("%Y-%m-%dT%H:%M")
        context["recent_decisions"] = Decision.objects.for_rows()[:8]
    return render(request, "console/home.html", context)
