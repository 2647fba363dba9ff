"""The authoring pages: the editor's check (JSON for CodeMirror, policies/authoring/check.py)
and the playground (playground.py). Permissions are console/roles.py's ROUTE_PERMISSIONS."""
from __future__ import annotations

import json

from django import forms
from django.http import JsonResponse
from django.shortcuts import get_object_or_404, render
from django.views.decorators.http import require_POST

from core.models import Decision
from policies.forms import REGO_WIDGET
from policies.models import Policy

from . import check, playground

DRAFT = "draft"


class CheckForm(forms.Form):
    source = forms.CharField(strip=False, required=False)
    tests = forms.CharField(strip=False, required=False)
    policy = forms.SlugField(required=False)
    quick = forms.BooleanField(required=False)  # compile and lint only: the editor checks as one types


@require_POST
def draft_check(request):
    """Check a draft as saving it would, and answer the problems with their lines (JSON)."""
    form = CheckForm(request.POST)
    if not form.is_valid():
        return JsonResponse({"error": "Send the draft as form fields source, tests and policy."}, status=400)
    data = form.cleaned_data
    policy = get_object_or_404(Policy, name=data["policy"]) if data["policy"] else None
    report = check.check_draft(data["source"], data["tests"], policy=policy, run_tests=not data["quick"])
    return JsonResponse(report.as_json())


class PlaygroundForm(forms.Form):
    against = forms.ChoiceField(label="Evaluate against")
    source = forms.CharField(widget=REGO_WIDGET, strip=False, required=False, label="Draft")
    input = forms.CharField(widget=forms.Textarea(attrs={"rows": 14, "spellcheck": "false", "class": "code",
                                                         "autocomplete": "off", "data-editor": "json"}),
                            strip=False, label="Input (JSON)")

    def __init__(self, *args, versions=(), **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["against"].choices = [(DRAFT, "the draft in the editor")] + [
            (str(n), f"saved version {n}") for n in versions]


def _prefill(request, policy) -> tuple[dict, str]:
    """The form's first values: the latest (or `?version=`) source, and a decision's input
    (`?decision=<id>&row=<pk>`) for those who may read decisions."""
    versions = policy.versions.order_by("-number")
    chosen = versions.filter(number=request.GET.get("version") or 0).first() or versions.first()
    initial = {"against": DRAFT, "source": chosen.source if chosen else "", "input": "{}"}
    note = ""
    decision_id = request.GET.get("decision")
    if decision_id:
        if not request.user.has_perm("core.view_decision"):
            return initial, "Your role does not read decisions, so their input cannot be brought here."
        found = Decision.objects.filter(decision_id=decision_id).select_related("version").order_by("-timestamp")
        decision = found.filter(pk=request.GET.get("row") or 0).first() or found.first()
        if decision is None or decision.input is None:
            return initial, "That decision has no stored input to try."
        initial["input"] = json.dumps(decision.input, indent=2, ensure_ascii=False)
        if decision.version is not None and decision.version.policy_id == policy.pk and not request.GET.get("version"):
            initial["source"] = decision.version.source
        note = (f"The input of decision {decision.decision_id}, as stored"
                + (" (masked fields keep their masked values)" if decision.masked else "")
                + (f"; the draft starts as version {decision.version.number}, which decided it" if decision.version
                   and decision.version.policy_id == policy.pk else "") + ".")
    return initial, note


def playground_page(request, name):
    policy = get_object_or_404(Policy, name=name)
    numbers = list(policy.versions.order_by("-number").values_list("number", flat=True))
    result = error = None
    note = ""
    if request.method == "POST":
        form = PlaygroundForm(request.POST, versions=numbers)
        if form.is_valid():
            data = form.cleaned_data
            version = None if data["against"] == DRAFT else policy.versions.get(number=int(data["against"]))
            try:
                result = playground.evaluate(policy, version.source if version else data["source"], data["input"],
                                             version=version)
            except playground.PlaygroundError as exc:
                error = str(exc)
    else:
        initial, note = _prefill(request, policy)
        form = PlaygroundForm(initial=initial, versions=numbers)
    context = {"policy": policy, "form": form, "result": result, "error": error, "note": note}
    if request.htmx and request.method == "POST":
        return render(request, "policies/_playground_result.html", context)
    return render(request, "policies/playground.html", context)
