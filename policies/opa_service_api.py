"""OPA's service APIs that Gavel serves for pull environments: bundles and status reports.

Both authenticate OPA with the environment's bundle token (`Authorization: Bearer <token>`,
stored as SHA-256 only; set it with `manage.py opa_bundle_token <environment>`).
"""
import json
import logging
import zlib

from django.http import HttpResponse, JsonResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_GET, require_POST

from . import bundles

log = logging.getLogger(__name__)
MAX_STATUS_BYTES = 1024 * 1024


def _environment(request):
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    return bundles.environment_for_token(token.strip()) if scheme.lower() == "bearer" else None


def _unauthorized():
    return JsonResponse({"error": "a valid bearer token is required"}, status=401)


@require_GET
def opa_bundle(request, environment):
    """GET /api/v1/opa/bundles/<environment>: the environment's bundle, 304 when unchanged."""
    found = _environment(request)
    if found is None or found.name != environment:
        return _unauthorized()
    if not found.is_pull:
        return JsonResponse({"error": f"{found.name} delivers by push; it has no bundle"}, status=404)
    bundle = bundles.build_bundle(found)
    etag = f'"{bundle.etag}"'
    if etag in [tag.strip() for tag in request.headers.get("If-None-Match", "").split(",")]:
        response = HttpResponse(status=304)
    else:
        response = HttpResponse(bundle.body, content_type="application/gzip")
    response["ETag"] = etag
    return response


@csrf_exempt
@require_POST
def opa_status(request):
    """POST /api/v1/opa/status: OPA's status report (labels, bundles, plugins, metrics)."""
    environment = _environment(request)
    if environment is None:
        return _unauthorized()
    body = request.body
    if len(body) > MAX_STATUS_BYTES:
        return JsonResponse({"error": "the report is too large"}, status=413)
    try:
        if request.headers.get("Content-Encoding", "").lower() == "gzip":
            body = zlib.decompressobj(16 + zlib.MAX_WBITS).decompress(body, MAX_STATUS_BYTES * 8)
        report = json.loads(body)
        if not isinstance(report, dict):
            raise ValueError("a JSON object is expected")
        instance = bundles.record_status(environment, report)
    except (ValueError, zlib.error) as exc:
        return JsonResponse({"error": f"not a status report: {exc}"}, status=400)
    log.debug("status of %s: healthy=%s revision=%s", instance, instance.healthy, instance.active_revision)
    return HttpResponse(status=204)
