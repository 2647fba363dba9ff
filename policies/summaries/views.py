"""Pages for compliance reviewers: a version's rules in plain English, a print view, a diff."""
from django.contrib.auth.decorators import permission_required
from django.shortcuts import get_object_or_404, render
from django.urls import reverse
from django.utils import timezone

from policies import summaries
from policies.models import PolicyVersion
from rollout import canary


def _version(name, number):
    return get_object_or_404(PolicyVersion.objects.select_related("policy", "author"), policy__name=name,
                             number=number)


def _url(request, url_name, **kwargs):
    # Reverse inside whichever namespace included summaries/urls.py (e.g. "policies").
    namespace = request.resolver_match.namespace
    return reverse(f"{namespace}:{url_name}" if namespace else url_name, kwargs=kwargs)


def _context(request, version):
    policy = version.policy
    summary = summaries.summary_for_version(version)
    activity = summaries.recent_activity(policy, summary)
    others = policy.versions.exclude(pk=version.pk).only("number").order_by("-number")
    return {
        "version": version, "policy": policy, "activity": activity, **canary.enforcement(policy),
        "summary": summaries.with_activity(summary, activity),
        "print_url": _url(request, "version_summary_print", name=policy.name, number=version.number),
        "page_url": _url(request, "version_summary", name=policy.name, number=version.number),
        "compare": [{"number": v.number, "url": _url(request, "version_summary_diff", name=policy.name,
                                                   number=version.number, other=v.number)} for v in others],
    }


@permission_required("policies.view_policyversion", raise_exception=True)
def summary_page(request, name, number):
    return render(request, "policies/summary/summary.html", _context(request, _version(name, number)))


@permission_required("policies.view_policyversion", raise_exception=True)
def summary_print(request, name, number):
    context = _context(request, _version(name, number))
    context["printed_at"] = timezone.now()
    return render(request, "policies/summary/print.html", context)


@permission_required("policies.view_policyversion", raise_exception=True)
def summary_diff(request, name, number, other):
    version, earlier = _version(name, number), _version(name, other)
    changes = summaries.diff(summaries.summary_for_version(earlier), summaries.summary_for_version(version))
    return render(request, "policies/summary/diff.html", {
        "version": version, "other": earlier, "policy": version.policy, "changes": changes,
        "page_url": _url(request, "version_summary", name=name, number=number),
        "other_url": _url(request, "version_summary", name=name, number=other),
    })
