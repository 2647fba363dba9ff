"""The decisions API, and the endpoint OPA's decision-log plugin uploads to."""
import logging
from functools import partial

from django.conf import settings
from django.core.exceptions import RequestDataTooBig
from django.db import DatabaseError
from django.http import HttpResponse, JsonResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST
from rest_framework import serializers, viewsets
from rest_framework.exceptions import NotFound
from rest_framework.response import Response

from core import replica
from core.api_pages import CappedPagination
from core.display import decision_ids
from core.models import Decision
from fleet.credentials import authenticate

from . import ingest_health, pagination
from .filters import DecisionFilter
from .ingest import BatchRejected, read_upload, stage_batch

log = logging.getLogger(__name__)


class DecisionSerializer(serializers.ModelSerializer):
    policy = serializers.SlugRelatedField(slug_field="name", read_only=True)
    version = serializers.IntegerField(source="version.number", read_only=True, allow_null=True)

    class Meta:
        model = Decision
        fields = ["decision_id", "timestamp", "path", "outcome", "reasons", "policy", "version", "version_source",
                  "effective_mode", "environment", "instance", "user", "agent", "action", "resource", "masked",
                  "input", "result", "labels", "bundles", "latency_ns", "requested_by", "received_at"]
        read_only_fields = fields


class DecisionPagination(CappedPagination):
    """The page's paginator. Counting stops past pagination.COUNT_LIMIT: `count_capped` then says
    more decisions match than `count` and the pages hold (an export gives them all). An exact count
    reads every match: seconds at ten million decisions."""

    count_limit = pagination.COUNT_LIMIT
    counted = "decisions"
    beyond = ("the last page's `next` reads on after its last decision (`before`, counted afresh); an export "
              "gives them all")

    def paginate_queryset(self, queryset, request, view=None):
        few = DecisionFilter.finds_few(request.query_params)
        self.django_paginator_class = partial(pagination.CappedPaginator, few=few)
        return super().paginate_queryset(queryset, request, view)

    def read_on(self, last) -> str:
        return str(pagination.Place.of(last))


class DecisionViewSet(viewsets.ReadOnlyModelViewSet):
    queryset = Decision.objects.select_related("policy", "version")
    serializer_class = DecisionSerializer
    filterset_class = DecisionFilter
    pagination_class = DecisionPagination
    lookup_field = "decision_id"
    lookup_value_regex = "[^/]+"
    read_from = "default"

    def get_queryset(self):
        return super().get_queryset().using(self.read_from)

    def list(self, request, *args, **kwargs):
        """A search: on the read replica while it keeps up (core/replica.py), which the
        `X-Gavel-Read-From` header names with how fresh it is when a replica is configured."""
        def search(reads):
            self.read_from = reads.alias
            return super(DecisionViewSet, self).list(request, *args, **kwargs)  # evaluated here, page and count

        reads, response = replica.read(search)
        if replica.configured():
            response["X-Gavel-Read-From"] = (f"replica; as-of={reads.as_of.isoformat()}" if reads.from_replica
                                             else f"primary; reason={reads.reason}")
        return response

    def retrieve(self, request, *args, **kwargs):
        """The newest decision with this id (as stored, or in the `~` form pages link with); when the
        id was stored more than once (other environments or times), `same_id` lists them all."""
        decision_id = decision_ids.from_url(kwargs["decision_id"])
        same_id = list(self.get_queryset().filter(decision_id=decision_id).order_by("-timestamp", "-id"))
        if not same_id:
            raise NotFound("No decision has this id.")
        chosen = next((d for d in same_id if str(d.pk) == request.query_params.get("row")), same_id[0])
        body = self.get_serializer(chosen).data
        body["same_id"] = [{"row": d.pk, "environment": d.environment, "timestamp": d.timestamp.isoformat(),
                            "outcome": d.outcome} for d in same_id] if len(same_id) > 1 else []
        return Response(body)


def _refused(status: int, message: str, remote: str | None) -> JsonResponse:
    ingest_health.count_refusal(status)
    log.warning("refused a decision-log batch from %s (%s): %s", remote, status, message)
    response = JsonResponse({"error": message}, status=status)
    if status in (429, 503):
        response["Retry-After"] = str(settings.GAVEL_INGEST_RETRY_AFTER_SECONDS)
    return response


@csrf_exempt
@require_POST
def opa_decision_logs(request):
    """OPA's decision-log service API: POST a gzip-compressed JSON array of decision events.

    204 means the batch is committed and will be stored; any other answer means nothing
    was kept, and OPA holds on to the batch and uploads it again: 429 when the backlog is
    over its limit, 503 when Postgres cannot take it, both with Retry-After.
    """
    remote = request.META.get("REMOTE_ADDR")
    try:
        caller = authenticate(request)  # instance tokens live in Postgres
    except DatabaseError as exc:
        return _refused(503, f"the batch cannot be taken right now ({exc.__class__.__name__}); retry later", remote)
    if caller is None:
        return _refused(401, "a valid bearer token is required", remote)
    try:
        # Before the batch is unpacked: under a burst, refusing must cost less than taking.
        ingest_health.check_capacity()
    except ingest_health.IngestBusy as exc:
        return _refused(429, str(exc), remote)
    except DatabaseError as exc:
        return _refused(503, f"the batch cannot be taken right now ({exc.__class__.__name__}); retry later", remote)
    try:
        body = request.body
    except RequestDataTooBig:
        return _refused(413, f"the batch is larger than {settings.GAVEL_LOG_BATCH_MAX_BYTES} bytes", remote)
    try:
        events = read_upload(body)
    except BatchRejected as exc:
        return _refused(exc.status, str(exc), remote)
    try:
        stage_batch(body, events, remote, environment=caller.environment, instance=caller.instance)
    except DatabaseError as exc:
        return _refused(503, f"the batch cannot be stored right now ({exc.__class__.__name__}); retry later", remote)
    return HttpResponse(status=204)
