"""GET /api/v1/activity/: the activity log, filtered like the page. There is nothing to write."""
from rest_framework import mixins, serializers, viewsets
from rest_framework.exceptions import ValidationError

from core.api_pages import CappedPagination

from . import entries, paging
from .filters import ActivityFilter


class ChangeSerializer(serializers.Serializer):
    field = serializers.CharField()
    label = serializers.CharField(help_text="The field for people, e.g. \"enforce percentage\".")
    before = serializers.JSONField(allow_null=True)
    after = serializers.JSONField(allow_null=True)


class ActivitySerializer(serializers.Serializer):
    id = serializers.CharField()
    at = serializers.DateTimeField()
    actor = serializers.CharField(help_text="The username; blank for Gavel itself (workers, OPA reports).")
    actor_label = serializers.CharField(help_text='The username, or "Gavel" (with the part of Gavel, e.g. '
                                                  '"Gavel (retention)", when it says) for changes no user made.')
    action = serializers.CharField(help_text="create, update, delete; add or remove for a user's roles; change for "
                                             "a new state of a rollout or kill switch (before: the state it replaced).")
    model = serializers.CharField()
    object_id = serializers.CharField()
    object = serializers.CharField()
    via = serializers.CharField(help_text="The page or API path the change came through, or a worker's task.")
    changes = ChangeSerializer(many=True)


class ActivityPagination(CappedPagination):
    django_paginator_class = paging.LogPaginator
    count_limit = paging.COUNT_LIMIT
    counted = "changes"
    beyond = ("the last page's `next` reads on after its last entry (`before`, counted afresh), and a narrower "
              "search (actor, model, since, until) reaches the rest too")

    def read_on(self, last) -> str:
        label, pgh_id = last  # the page's keys: the entry's id as the page shows it
        return f"{label}:{pgh_id}"


class ActivityViewSet(mixins.ListModelMixin, viewsets.GenericViewSet):
    queryset = entries.log()
    serializer_class = ActivitySerializer
    filterset_class = ActivityFilter
    pagination_class = ActivityPagination

    def filter_queryset(self, queryset):
        # The page's keys, picked table by table as the page does (activity/paging.py).
        filterset = ActivityFilter(self.request.query_params)
        if not filterset.is_valid():
            raise ValidationError(filterset.errors)
        return filterset.keys()

    def paginate_queryset(self, keys):
        # Only the page's entries are built.
        page_keys = super().paginate_queryset(keys)
        return None if page_keys is None else entries.built(page_keys)

    def get_serializer(self, instance=None, *args, **kwargs):
        # Entries become rows (before -> after, names for ids) a page at a time.
        if instance is not None and kwargs.get("many"):
            instance = entries.rows(instance)
        return super().get_serializer(instance, *args, **kwargs)
