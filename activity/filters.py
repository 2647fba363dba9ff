"""One FilterSet for the activity log: the page and /api/v1/activity/ filter alike.

It filters each event table on its own (`keys()`), so a page is picked by each table's index
(activity/paging.py) rather than from the union of every table that entries.log() reads.
"""
import django_filters
from django import forms
from django.contrib.auth.models import User
from django.core.exceptions import ValidationError

from . import paging
from .models import ActivityEntry
from .tracking import REGISTRY, tracked_by_event_label


# Held actions and their steps: what enforcement points (and Gavel's worker) write all day.
MACHINE_TRAFFIC = ("held-action", "held-action-step")


def model_choices():
    return sorted(((t.key, t.label.capitalize()) for t in REGISTRY.values()), key=lambda c: c[1])


class EntryField(forms.CharField):
    """An entry's id, as the page and the API show it ("activity.PolicyEvent:12"), read as where
    that entry stands in the log (paging.Entry)."""

    def to_python(self, value) -> paging.Entry | None:
        value = super().to_python(value).strip()
        if not value:
            return None
        label, _, pgh_id = value.rpartition(":")
        tracked = tracked_by_event_label(label)
        if tracked is None or not (pgh_id.isascii() and pgh_id.isdigit() and len(pgh_id) < 19):
            raise ValidationError("Not the id of an entry of the activity log (such as activity.PolicyEvent:12).")
        at = tracked.event_model._default_manager.filter(pgh_id=pgh_id).values_list("pgh_created_at", flat=True).first()
        if at is None:
            raise ValidationError("That change is no longer in the activity log.")
        return paging.Entry(at, label, int(pgh_id))


class EntryFilter(django_filters.Filter):
    field_class = EntryField


class ActivityFilter(django_filters.FilterSet):
    actor = django_filters.CharFilter(method="filter_actor", label="Who",
                                      widget=forms.TextInput(attrs={"placeholder": "username"}))
    model = django_filters.ChoiceFilter(choices=model_choices, method="filter_model", label="What",
                                        empty_label="Anything")
    object = django_filters.CharFilter(method="filter_object", label="Object id")
    since = django_filters.IsoDateTimeFilter(
        field_name="pgh_created_at", lookup_expr="gte", label="From",
        widget=forms.DateTimeInput(attrs={"type": "datetime-local"}),
    )
    until = django_filters.IsoDateTimeFilter(
        field_name="pgh_created_at", lookup_expr="lt", label="Until",
        widget=forms.DateTimeInput(attrs={"type": "datetime-local"}),
    )

    before = EntryFilter(
        method="filter_before", label="Older than", widget=forms.HiddenInput,
        help_text="An entry's id (activity.PolicyEvent:12): only the changes after it, newest first. "
                  "Past the counted pages, the last entry's id reads on.")

    machines = django_filters.BooleanFilter(
        method="filter_machines", label="Include held actions from enforcement points",
        widget=forms.CheckboxInput, help_text="Each held request and its steps: enforcement points' traffic.")

    class Meta:
        model = ActivityEntry
        fields = ["actor", "model", "object", "since", "until", "before", "machines"]

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.actor_ids: dict[str, list[int]] = {}

    def keys(self) -> paging.Keys:
        """The matching entries' keys, for a page; none when a filter is not valid."""
        return paging.Keys(self.tables())

    def tables(self) -> list:
        """Each event table the search reads, filtered: the one asked for, or every table but the
        enforcement points' unless they are asked for (they hold requests by the thousand).
        None at all when a filter is not valid: a mistyped filter shows nothing rather than everything."""
        if not self.is_valid():
            return []
        wanted = self.form.cleaned_data
        if wanted.get("model"):
            chosen = [REGISTRY[wanted["model"]]]
        else:
            chosen = [t for key, t in REGISTRY.items() if wanted.get("machines") or key not in MACHINE_TRAFFIC]
        return [self.filter_queryset(t.event_model._default_manager.all()) for t in chosen]

    def filter_model(self, queryset, name, value: str):
        return queryset  # read in tables(): it picks the tables

    def filter_machines(self, queryset, name, value: bool):
        return queryset  # read in tables(): the default (unchecked) leaves the enforcement points' out

    def filter_actor(self, queryset, name, value: str):
        # The actor is a user id inside each entry's context, so there is no join to filter through.
        # The ids are looked up once for all the tables.
        if value not in self.actor_ids:
            named = User.objects.filter(username__iexact=value.strip())
            self.actor_ids[value] = list(named.values_list("pk", flat=True))
        return queryset.filter(pgh_context__user__in=self.actor_ids[value])

    def filter_before(self, queryset, name, value: paging.Entry):
        return paging.older_than(queryset, value)

    def filter_object(self, queryset, name, value: str):
        # Ids are numbers or UUIDs by table: text that cannot be this table's id matches none of it.
        try:
            pk = queryset.model._meta.get_field("pgh_obj").target_field.to_python(value.strip())
        except ValidationError:
            return queryset.none()
        return queryset.filter(pgh_obj_id=pk)
