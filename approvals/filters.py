"""One FilterSet for held actions: the queue's search, the API and the CSV export use it alike."""
import django_filters
from django import forms

from policies.models import Policy

from .models import HeldAction


class HeldActionFilter(django_filters.FilterSet):
    status = django_filters.ChoiceFilter(choices=HeldAction.Status.choices, empty_label="Any status")
    policy = django_filters.ModelChoiceFilter(queryset=Policy.objects.all(), to_field_name="name",
                                              empty_label="Any policy")
    requester = django_filters.CharFilter(label="Requested by")
    since = django_filters.IsoDateTimeFilter(field_name="created_at", lookup_expr="gte", label="Held from (UTC)",
                                             widget=forms.DateTimeInput(attrs={"type": "datetime-local"}))
    until = django_filters.IsoDateTimeFilter(field_name="created_at", lookup_expr="lt", label="Held until (UTC)",
                                             widget=forms.DateTimeInput(attrs={"type": "datetime-local"}))

    class Meta:
        model = HeldAction
        fields = ["status", "policy", "requester", "since", "until"]
