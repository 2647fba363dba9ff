"""One FilterSet for decisions: the audit page, the API and (later) exports use it alike."""
import django_filters
from django import forms
from django.db.models import F, Func, TextField, Value

from policies.models import Mode, Policy

from .models import Decision, Outcome


class DecisionFilter(django_filters.FilterSet):
    since = django_filters.IsoDateTimeFilter(
        field_name="timestamp", lookup_expr="gte", label="From",
        widget=forms.DateTimeInput(attrs={"type": "datetime-local"}),
    )
    until = django_filters.IsoDateTimeFilter(
        field_name="timestamp", lookup_expr="lt", label="Until",
        widget=forms.DateTimeInput(attrs={"type": "datetime-local"}),
    )
    outcome = django_filters.ChoiceFilter(choices=Outcome.choices, empty_label="Any outcome")
    policy = django_filters.ModelChoiceFilter(queryset=Policy.objects.all(), to_field_name="name",
                                              empty_label="Any policy")
    effective_mode = django_filters.ChoiceFilter(choices=Mode.choices, empty_label="Any mode", label="Mode")
    path = django_filters.CharFilter(method="filter_path", label="Policy path",
                                     widget=forms.TextInput(attrs={"placeholder": "gavel/agent_gateway"}))
    q = django_filters.CharFilter(method="filter_reasons", label="Reason contains",
                                  widget=forms.TextInput(attrs={"placeholder": "e.g. budget"}))
    decision_id = django_filters.CharFilter(label="Decision id")

    class Meta:
        model = Decision
        fields = ["since", "until", "outcome", "policy", "effective_mode", "path", "q", "decision_id"]

    def filter_path(self, queryset, name, value):
        """The path itself or anything under it: `gavel/agent_gateway` matches `.../decision`."""
        value = value.strip().strip("/").replace(".", "/")
        return queryset.filter(path__startswith=value) if value else queryset

    def filter_reasons(self, queryset, name, value):
        joined = Func(F("reasons"), Value(" \n "), function="array_to_string", output_field=TextField())
        return queryset.alias(reasons_text=joined).filter(reasons_text__icontains=value)
