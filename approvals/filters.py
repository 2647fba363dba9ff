"""One FilterSet for held actions: the queue's search, the API and the CSV export use it alike; and the
searches a person saves under a name (SavedFilter)."""
import django_filters
from django import forms
from django.core.exceptions import ValidationError
from django.http import QueryDict

from policies.models import Policy

from .models import HeldAction, SavedFilter

SAVED_MAX = 20  # saved searches per person


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


def _saved_query(query: str) -> str:
    """The queue's query reduced to its tab and the filters above, in a fixed order: no page number, no
    stray parameter, nothing empty. Refuses a search the filters would refuse."""
    given = QueryDict(query)
    kept = QueryDict(mutable=True)
    for key in ["status", *HeldActionFilter.Meta.fields]:
        if given.get(key, "").strip():
            kept[key] = given[key].strip()
    filterset = HeldActionFilter(kept, queryset=HeldAction.objects.none())
    if not filterset.is_valid():
        raise ValidationError(f"This search cannot be saved: {filterset.errors.as_text()}")
    return kept.urlencode()


def save_filter(owner, name: str, query: str) -> SavedFilter:
    """Save the queue's current search as `name` for `owner`; the same name again replaces it."""
    name = " ".join((name or "").split())
    if not name:
        raise ValidationError("Give the search a name.")
    if len(name) > SavedFilter._meta.get_field("name").max_length:
        raise ValidationError("Keep the name to 80 characters.")
    query = _saved_query(query or "")
    if len(query) > SavedFilter._meta.get_field("query").max_length:
        raise ValidationError("This search is too long to save.")
    mine = SavedFilter.objects.filter(owner=owner)
    if not mine.filter(name=name).exists() and mine.count() >= SAVED_MAX:
        raise ValidationError(f"You have {SAVED_MAX} saved searches: delete one first.")
    saved, _ = SavedFilter.objects.update_or_create(owner=owner, name=name, defaults={"query": query})
    return saved
