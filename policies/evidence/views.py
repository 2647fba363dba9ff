"""Print views an auditor files: a version with its approval chain and its Rego as a numbered
appendix, and the change between two versions; each as HTML to print and as PDF (WeasyPrint),
made from the same template. Permissions: console/roles.py's ROUTE_PERMISSIONS."""
from __future__ import annotations

import mimetypes
from urllib.parse import urlsplit

from django.conf import settings
from django.contrib.staticfiles import finders
from django.http import HttpResponse
from django.shortcuts import get_object_or_404, render
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils import timezone

from policies import diffs, summaries
from policies.models import PolicyVersion
from rollout import canary

from . import chain


class PdfUnavailable(RuntimeError):
    """WeasyPrint (or the pango library it draws text with) is missing on this host."""


def _version(name, number):
    return get_object_or_404(PolicyVersion.objects.select_related("policy", "author"), policy__name=name,
                             number=number)


def _facts(version) -> dict:
    return {"version": version, "author": chain.person(version.author), "chain": chain.approval_chain(version),
            "running": chain.running_in(version), "history": chain.other_history(version)}


def version_context(request, version) -> dict:
    policy = version.policy
    summary = summaries.summary_for_version(version)
    activity = summaries.recent_activity(policy, summary)
    facts = _facts(version)
    return {
        "facts": facts, "version": version, "author": facts["author"], "policy": policy, "activity": activity,
        "summary": summaries.with_activity(summary, activity), **canary.enforcement(policy),
        "printed_at": timezone.now(), "prepared_for": chain.person(request.user),
        "pdf_url": reverse("policies:version_evidence_pdf", args=[policy.name, version.number]),
        "page_url": reverse("policies:version", args=[policy.name, version.number]),
    }


def diff_context(request, version, other) -> dict:
    policy = version.policy
    return {
        "policy": policy, "new": _facts(version), "old": _facts(other), "version": version, "other": other,
        "changes": summaries.diff(summaries.summary_for_version(other), summaries.summary_for_version(version)),
        "source_diff": diffs.line_diff(other.source, version.source),
        "tests_diff": diffs.line_diff(other.tests, version.tests) if other.tests or version.tests else None,
        "printed_at": timezone.now(), "prepared_for": chain.person(request.user),
        "pdf_url": reverse("policies:version_diff_evidence_pdf", args=[policy.name, version.number, other.number]),
        "page_url": reverse("policies:version", args=[policy.name, version.number]),
    }


def _static_only(url: str) -> tuple[bytes, str]:
    """What the PDF may load: Gavel's own static files, from disk, and nothing from any network."""
    path = urlsplit(url).path
    found = finders.find(path.removeprefix(settings.STATIC_URL)) if path.startswith(settings.STATIC_URL) else None
    if not found:
        raise ValueError(f"the PDF may use Gavel's static files only, not {url}")
    with open(found, "rb") as handle:
        return handle.read(), mimetypes.guess_type(found)[0] or "text/css"


def pdf_of(html: str) -> bytes:
    try:
        # Third-party, loaded on demand: Gavel starts without pango, only the PDF needs it.
        import weasyprint  # noqa: PLC0415
        from weasyprint.urls import URLFetcher, URLFetcherResponse  # noqa: PLC0415
    except OSError as exc:  # pango missing
        raise PdfUnavailable(f"WeasyPrint cannot draw text here: {exc}") from exc

    class StaticOnly(URLFetcher):
        def fetch(self, url, headers=None):
            body, mime = _static_only(url)
            return URLFetcherResponse(url, body=body, headers={"Content-Type": mime})

    return weasyprint.HTML(string=html, base_url="http://gavel.invalid/", url_fetcher=StaticOnly()).write_pdf()


def _pdf_response(request, template: str, context: dict, filename: str) -> HttpResponse:
    try:
        body = pdf_of(render_to_string(template, {**context, "as_pdf": True}, request=request))
    except PdfUnavailable as exc:
        return HttpResponse(f"The PDF cannot be made on this server: {exc}", status=503, content_type="text/plain")
    response = HttpResponse(body, content_type="application/pdf")
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    return response


def version_evidence(request, name, number):
    return render(request, "policies/evidence/version.html", version_context(request, _version(name, number)))


def version_evidence_pdf(request, name, number):
    version = _version(name, number)
    return _pdf_response(request, "policies/evidence/version.html", version_context(request, version),
                         f"{name}-v{number}-evidence.pdf")


def diff_evidence(request, name, number, other):
    version, earlier = _version(name, number), _version(name, other)
    return render(request, "policies/evidence/diff.html", diff_context(request, version, earlier))


def diff_evidence_pdf(request, name, number, other):
    version, earlier = _version(name, number), _version(name, other)
    return _pdf_response(request, "policies/evidence/diff.html", diff_context(request, version, earlier),
                         f"{name}-v{other}-to-v{number}-evidence.pdf")
