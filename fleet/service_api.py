"""OPA's service APIs that Gavel serves: bundles for pull environments, status reports, and
the small authz bundle with the hashes of Gavel's tokens (opa_authz.py).

All authenticate OPA by its bearer token (opa_credentials.py): an instance's own token, or
the environment's bundle token (`manage.py opa_environment <environment> --new-bundle-token`).
Either is stored as SHA-256 only. A status report with an instance token updates that instance.
"""
import json
import logging
import zlib

from django.http import HttpResponse, JsonResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_GET, require_POST

from . import bundles, opa_authz
from .credentials import authenticate

log = logging.getLogger(__name__)
MAX_STATUS_BYTES = 1024 * 1024


def _caller(request):
    """The authenticated caller, if it belongs to an environment (the bootstrap token does not)."""
    caller = authenticate(request)
    return caller if caller is not None and caller.environment is not None else None


def _unauthorized():
    return JsonResponse({"error": "a valid bearer token is required"}, status=401)


@require_GET
def opa_bundle(request, environment):
    """GET /api/v1/opa/bundles/<environment>: the environment's bundle, 304 when unchanged."""
    caller = _caller(request)
    if caller is None or caller.environment.name != environment:
        return _unauthorized()
    found = caller.environment
    if not found.is_pull:
        return JsonResponse({"error": f"{found.name} delivers by push; it has no bundle"}, status=404)
    return _bundle_response(request, bundles.build_bundle(found))


def _bundle_response(request, bundle):
    etag = f'"{bundle.etag}"'
    if etag in [tag.strip() for tag in request.headers.get("If-None-Match", "").split(",")]:
        response = HttpResponse(status=304)
    else:
        response = HttpResponse(bundle.body, content_type="application/gzip")
    response["ETag"] = etag
    return response


@require_GET
def opa_authz_bundle(request):
    """GET /api/v1/opa/authz: the hashes of Gavel's tokens this OPA accepts (opa_authz.py).
    Only with the instance's own token: the bundle is per instance."""
    caller = _caller(request)
    if caller is None or caller.instance is None:
        return _unauthorized()
    return _bundle_response(request, opa_authz.authz_bundle(caller.instance))


@csrf_exempt
@require_POST
def opa_status(request):
    """POST /api/v1/opa/status: OPA's status report (labels, bundles, plugins, metrics)."""
    caller = _caller(request)
    if caller is None:
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
        instance = bundles.record_status(caller.environment, report, instance=caller.instance)
    except (ValueError, zlib.error) as exc:
        return JsonResponse({"error": f"not a status report: {exc}"}, status=400)
    log.debug("status of %s: healthy=%s revision=%s", instance, instance.healthy, instance.active_revision)
    return HttpResponse(status=204)
