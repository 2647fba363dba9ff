"""One FilterSet for decisions: the audit page, the API, the charts and exports use it alike.

Who, which agent, what action on what resource, where (environment, OPA instance) are plain
indexed columns read out of the input at ingest (fields.py), so each is an exact match. The
free text `q` is Postgres full-text search over the `search` vector (reasons and chosen input
fields); `reason` is one exact reason, answered by the GIN index on `reasons`.
"""
from urllib.parse import urlencode

import django_filters
from django import forms
from django.contrib.postgres.search import SearchQuery
from django.urls import reverse

from core.models import DENIED_OUTCOMES, Decision, Outcome
from policies.models import Policy
from rollout.models import Mode

from .pagination import Place, after

DENIED = "denied"


def text_input(placeholder: str) -> forms.TextInput:
    return forms.TextInput(attrs={"placeholder": placeholder})


def exact(label: str, placeholder: str, **kwargs) -> django_filters.CharFilter:
    return django_filters.CharFilter(label=label, widget=text_input(placeholder), **kwargs)


class PlaceField(forms.CharField):
    """A decision's place in the list, as the last page's Older link writes it (pagination.Place)."""

    def to_python(self, value) -> Place | None:
        value = super().to_python(value).strip()
        if not value:
            return None
        try:
            return Place.parse(value)
        except ValueError as error:
            raise forms.ValidationError(f"Not a place in the list of decisions: it {error}.") from None


class PlaceFilter(django_filters.Filter):
    field_class = PlaceField


class DecisionFilter(django_filters.FilterSet):
    # Every filter names its label: a label django-filter derives is cached as None on the class
    # once the API schema reads it, and manifests would then say "None: Deny".
    since = django_filters.IsoDateTimeFilter(
        field_name="timestamp", lookup_expr="gte", label="From (UTC)",
        widget=forms.DateTimeInput(attrs={"type": "datetime-local"}),
    )
    until = django_filters.IsoDateTimeFilter(
        field_name="timestamp", lookup_expr="lt", label="Until (UTC)",
        widget=forms.DateTimeInput(attrs={"type": "datetime-local"}),
    )
    # "denied" is either kind of denial, enforced or dry-run: what the deny charts count.
    outcome = django_filters.ChoiceFilter(
        choices=[(DENIED, "Denied (enforced or dry-run)"), *Outcome.choices], empty_label="Any outcome",
        method="filter_outcome", label="Outcome",
    )
    q = django_filters.CharFilter(
        method="filter_text", label="Search",
        widget=forms.TextInput(attrs={"placeholder": 'budget -approved "sql.query"', "type": "search"}),
        help_text='Words in reasons and key input fields; "quoted phrase", or, -word.',
    )
    policy = django_filters.ModelChoiceFilter(queryset=Policy.objects.all(), to_field_name="name",
                                              empty_label="Any policy", label="Policy")
    version = django_filters.NumberFilter(field_name="version__number", label="Version", min_value=1,
                                          widget=forms.NumberInput(attrs={"placeholder": "3", "min": 1}))
    effective_mode = django_filters.ChoiceFilter(choices=Mode.choices, empty_label="Any mode", label="Mode")
    environment = exact("Environment", "prod")
    instance = exact("OPA instance", "opa-eu-1")
    user = exact("User", "dana")
    agent = exact("Agent", "copilot-7")
    action = exact("Action", "sql.query")
    resource = exact("Resource", "db/orders")
    reason = exact("Reason (exact)", "token budget exceeded", method="filter_reason")
    path = django_filters.CharFilter(method="filter_path", label="Policy path",
                                     widget=text_input("gavel/agent_gateway"))
    decision_id = django_filters.CharFilter(label="Decision id")
    before = PlaceFilter(
        method="filter_before", label="Older than", widget=forms.HiddenInput,
        help_text="Only the decisions after this place in the newest-first list (time and row id, as the "
                  "last page's next link writes it): past the counted pages, the search reads on from there.")

    class Meta:
        model = Decision
        fields = ["since", "until", "outcome", "q", "policy", "version", "effective_mode", "environment", "instance",
                  "user", "agent", "action", "resource", "reason", "path", "decision_id", "before"]

    # The page shows these always; the rest sit under "More filters" (open when one is set).
    COMMON = ("since", "until", "outcome", "q", "policy")
    # Each matches a handful of decisions at most: a decision id is stored once.
    NEEDLES = ("decision_id",)

    @classmethod
    def finds_few(cls, data) -> bool:
        """Whether the search (its query parameters) can match only a handful of decisions."""
        return any(str(data.get(name) or "").strip() for name in cls.NEEDLES)

    def filter_outcome(self, queryset, name, value):
        if value == DENIED:
            return queryset.filter(outcome__in=DENIED_OUTCOMES)
        return queryset.filter(outcome=value)

    def filter_text(self, queryset, name, value):
        value = value.strip()
        if not value:
            return queryset
        # websearch syntax never raises on odd input ("quotes", or, -not); "simple" keeps
        # tool names and ids whole instead of stemming them as English.
        return queryset.filter(search=SearchQuery(value, search_type="websearch", config="simple"))

    def filter_before(self, queryset, name, value: Place):
        return after(queryset, value)

    def filter_reason(self, queryset, name, value):
        return queryset.filter(reasons__contains=[value])

    def filter_path(self, queryset, name, value):
        """The path itself or anything under it: `gavel/agent_gateway` matches `.../decision`."""
        value = value.strip().strip("/").replace(".", "/")
        return queryset.filter(path__startswith=value) if value else queryset

    # --- for the form --------------------------------------------------------------------

    def common_fields(self):
        return [self.form[name] for name in self.COMMON]

    def more_fields(self):
        return [field for field in self.form.visible_fields() if field.name not in self.COMMON]

    def more_in_use(self) -> bool:
        """Whether a filter under "More filters" is set (or wrong), so the form opens it."""
        return any(self.data.get(field.name) or field.errors for field in self.more_fields())

    def active(self) -> list[dict]:
        """The filters in use, each with a link that drops it: the search said in words."""
        shown = []
        for name in self.Meta.fields:
            value = self.data.get(name)
            if not value:
                continue
            field = self.form[name]
            if isinstance(self.filters[name], django_filters.ChoiceFilter):
                value = dict(field.field.choices).get(value, value)
            elif name == "before" and (place := getattr(self.form, "cleaned_data", {}).get("before")):
                value = f"{place.at:%Y-%m-%d %H:%M:%S} UTC"  # the time, not the row id
            rest = {key: v for key, v in self.data.items() if v and key not in (name, "page")}
            shown.append({"name": name, "label": field.label, "value": value, "without": urlencode(rest)})
        return shown


def search_url(base_query: dict, **extra) -> str:
    """The audit search for the page's filters plus this point's own."""
    query = {k: v for k, v in {**base_query, **extra}.items() if v not in ("", None)}
    return f"{reverse('audit:list')}?{urlencode(query)}"
