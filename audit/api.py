"""The decisions API, and the endpoint OPA's decision-log plugin uploads to."""
import hmac
import logging

from django.conf import settings
from django.core.exceptions import RequestDataTooBig
from django.http import HttpResponse, JsonResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST
from rest_framework import viewsets

from .filters import DecisionFilter
from .ingest import BatchRejected, read_upload, stage_batch
from .models import Decision
from .serializers import DecisionSerializer

log = logging.getLogger(__name__)


class DecisionViewSet(viewsets.ReadOnlyModelViewSet):
    queryset = Decision.objects.select_related("policy", "version")
    serializer_class = DecisionSerializer
    filterset_class = DecisionFilter
    lookup_field = "decision_id"
    lookup_value_regex = "[^/]+"


def _bearer_token_ok(request) -> bool:
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    return scheme.lower() == "bearer" and hmac.compare_digest(token.strip().encode(), settings.GAVEL_OPA_TOKEN.encode())


@csrf_exempt
@require_POST
def opa_decision_logs(request):
    """OPA's decision-log service API: POST a gzip-compressed JSON array of decision events.

    204 means the batch is committed and will be stored; any other answer means nothing
    was kept, and OPA holds on to the batch and uploads it again.
    """
    if not _bearer_token_ok(request):
        return JsonResponse({"error": "a valid bearer token is required"}, status=401)
    try:
        body = request.body
    except RequestDataTooBig:
        return JsonResponse({"error": f"the batch is larger than {settings.GAVEL_LOG_BATCH_MAX_BYTES} bytes"}, status=413)
    try:
        events = read_upload(body)
    except BatchRejected as exc:
        log.warning("refused a decision-log batch from %s: %s", request.META.get("REMOTE_ADDR"), exc)
        return JsonResponse({"error": str(exc)}, status=exc.status)
    stage_batch(body, events, request.META.get("REMOTE_ADDR"))
    return HttpResponse(status=204)
