"""One FilterSet for the activity log: the page and /api/v1/activity/ filter alike."""
import django_filters
from django import forms
from django.contrib.auth.models import User

from .models import ActivityEntry
from .tracking import REGISTRY


# Held actions and their steps: what enforcement points (and Gavel's worker) write all day.
MACHINE_TRAFFIC = ("held-action", "held-action-step")


def model_choices():
    return sorted(((t.key, t.label.capitalize()) for t in REGISTRY.values()), key=lambda c: c[1])


class ActivityFilter(django_filters.FilterSet):
    actor = django_filters.CharFilter(method="filter_actor", label="Who",
                                      widget=forms.TextInput(attrs={"placeholder": "username"}))
    model = django_filters.ChoiceFilter(choices=model_choices, method="filter_model", label="What",
                                        empty_label="Anything")
    object = django_filters.CharFilter(field_name="pgh_obj_id", label="Object id")
    since = django_filters.IsoDateTimeFilter(
        field_name="pgh_created_at", lookup_expr="gte", label="From",
        widget=forms.DateTimeInput(attrs={"type": "datetime-local"}),
    )
    until = django_filters.IsoDateTimeFilter(
        field_name="pgh_created_at", lookup_expr="lt", label="Until",
        widget=forms.DateTimeInput(attrs={"type": "datetime-local"}),
    )

    machines = django_filters.BooleanFilter(
        method="filter_machines", label="Include held actions from enforcement points",
        widget=forms.CheckboxInput, help_text="Each held request and its steps: enforcement points' traffic.")

    class Meta:
        model = ActivityEntry
        fields = ["actor", "model", "object", "since", "until", "machines"]

    @property
    def qs(self):
        queryset = super().qs
        wants = self.form.cleaned_data.get("machines") if self.form.is_valid() else False
        if wants or self.form.cleaned_data.get("model") in MACHINE_TRAFFIC:
            return queryset
        # Hidden unless asked for: enforcement points hold requests by the thousand. Reviewers' votes stay.
        return queryset.exclude(pgh_model__in=[REGISTRY[key].event_model._meta.label for key in MACHINE_TRAFFIC])

    def filter_machines(self, queryset, name, value):
        return queryset  # read in qs above: the default (unchecked) hides them

    def filter_actor(self, queryset, name, value: str):
        # The actor is a user id inside each entry's context, so there is no join to filter through.
        return queryset.filter(user_id__in=list(
            User.objects.filter(username__iexact=value.strip()).values_list("pk", flat=True)))

    def filter_model(self, queryset, name, value: str):
        # Reads only that model's event table instead of filtering the union of all of them.
        return queryset.across(REGISTRY[value].event_model)
