"""The alerts page: what is firing now, what fired recently, and the rules (security admins edit them)."""
from urllib.parse import urlencode

from django import forms
from django.conf import settings
from django.contrib.auth.decorators import permission_required
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse

from audit.filters import search_url
from policies.models import Policy

from . import services as alerts
from .models import Alert, AlertRule


class AlertRuleForm(forms.ModelForm):
    policy = forms.ModelChoiceField(queryset=Policy.objects.all(), required=False, empty_label="Every policy")

    class Meta:
        model = AlertRule
        fields = ["name", "metric", "threshold", "window_minutes", "min_decisions", "environment", "policy", "enabled"]

    def clean(self):
        cleaned = super().clean()
        threshold, metric = cleaned.get("threshold"), cleaned.get("metric")
        if threshold is not None and threshold <= 0:
            self.add_error("threshold", "Use a threshold above zero.")
        if threshold is not None and metric == AlertRule.Metric.DENY_RATE and threshold >= 100:
            self.add_error("threshold", "A deny rate is a percentage: use a threshold below 100.")
        window = cleaned.get("window_minutes")
        if window is not None and not 1 <= window <= 1440:
            self.add_error("window_minutes", "Use a window of 1 to 1440 minutes (a day).")
        return cleaned


def _rows(queryset):
    """Each alert with links to the decisions of the window it opened on: charts and search."""
    return [{"alert": alert, "search_url": search_url(query),
             "dashboard_url": f"{reverse('audit:dashboard')}?{urlencode(query)}"}
            for alert in queryset for query in [alerts.search_query(alert)]]


@permission_required("alerts.view_alert", raise_exception=True)
def alert_list(request):
    context = {
        "open": _rows(Alert.objects.filter(closed_at__isnull=True).select_related("rule__policy")),
        "recent": _rows(Alert.objects.filter(closed_at__isnull=False).select_related("rule__policy")[:50]),
        "rules": AlertRule.objects.select_related("policy"),
        "can_edit": request.user.has_perm("alerts.change_alertrule"),
        "webhook": bool(settings.GAVEL_ALERT_WEBHOOK_URL),
    }
    # htmx refreshes the open alerts in place every so often.
    template = "alerts/_open.html" if request.htmx and not request.htmx.boosted else "alerts/list.html"
    return render(request, template, context)


@permission_required("alerts.add_alertrule", raise_exception=True)
def rule_create(request):
    return _rule_form(request, AlertRule(created_by=request.user))


@permission_required("alerts.change_alertrule", raise_exception=True)
def rule_edit(request, pk):
    return _rule_form(request, get_object_or_404(AlertRule, pk=pk))


def _rule_form(request, rule):
    form = AlertRuleForm(request.POST or None, instance=rule)
    if request.method == "POST" and form.is_valid():
        form.save()
        return redirect("alerts:list")
    return render(request, "alerts/rule_form.html", {"form": form, "rule": rule})
