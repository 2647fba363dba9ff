"""The API `gavel` (gavel_cli/) calls, with a user's token (a CI service account's): check
documents, run a policy's Rego tests, replay a version, and download the environment's
published policies for `conftest pull` (a tarball over HTTP, or an OCI artifact from `/v2/`, the
registry API, registry.py). Each needs checks.run_check (console/roles.py's route table)."""
from __future__ import annotations

from django.http import HttpResponse, JsonResponse
from drf_spectacular.extensions import OpenApiAuthenticationExtension
from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.authentication import BasicAuthentication, SessionAuthentication, TokenAuthentication
from rest_framework.authtoken.models import Token
from rest_framework.decorators import api_view, authentication_classes
from rest_framework.exceptions import AuthenticationFailed
from rest_framework.negotiation import BaseContentNegotiation
from rest_framework.response import Response
from rest_framework.views import APIView

from fleet.models import Environment

from . import registry, services
from .bundle import policy_tarball, revision


class CheckSerializer(serializers.Serializer):
    environment = serializers.SlugField()
    documents = serializers.JSONField(help_text='[{"file": "tfplan.json", "input": {...}}, ...]')
    policy = serializers.CharField(required=False, allow_blank=True, default="")
    namespace = serializers.CharField(required=False, allow_blank=True, default="")
    ci = serializers.JSONField(required=False, default=dict, help_text="commit, branch, job_url, pipeline, ...")


class VerifySerializer(serializers.Serializer):
    policy = serializers.CharField()
    version = serializers.IntegerField(required=False, allow_null=True, min_value=1)
    environment = serializers.CharField(required=False, allow_blank=True, default="")


class ReplaySerializer(serializers.Serializer):
    policy = serializers.CharField()
    version = serializers.IntegerField(min_value=1)
    environment = serializers.CharField(required=False, allow_blank=True, default="")
    last = serializers.IntegerField(required=False, allow_null=True)


class TokenAsBasicAuthentication(BasicAuthentication):
    """HTTP Basic with the user's API token as the password, for tools that only speak Basic:
    `conftest pull https://<username>:<token>@gavel.example.com/api/v1/checks/policies/<env>.tar.gz`."""

    def authenticate_credentials(self, userid, password, request=None):
        token = Token.objects.select_related("user").filter(key=password).first()
        if token is None or not token.user.is_active or token.user.get_username() != userid:
            raise AuthenticationFailed("invalid username or token")
        return token.user, token


class TokenAsBasicScheme(OpenApiAuthenticationExtension):
    """How the schema (and `manage.py check --deploy`) describes the Basic form of a token."""

    target_class = TokenAsBasicAuthentication
    name = "tokenAsBasic"

    def get_security_definition(self, auto_schema):
        return {"type": "http", "scheme": "basic",
                "description": "Username and API token as the password (for conftest pull)"}


def _refused(exc: Exception, code: int = status.HTTP_400_BAD_REQUEST) -> Response:
    return Response({"detail": str(exc)}, status=code)


@extend_schema(request=CheckSerializer, responses={200: dict})
@api_view(["POST"])
def check(request):
    """Evaluate documents against the environment's active versions, exceptions applied, in
    Gavel's sandboxed OPA; each verdict is stored as a decision marked as coming from CI."""
    body = CheckSerializer(data=request.data)
    body.is_valid(raise_exception=True)
    try:
        return Response(services.run_check(user=request.user, **body.validated_data))
    except services.CheckRefused as exc:
        return _refused(exc)
    except services.CheckUnavailable as exc:
        return _refused(exc, status.HTTP_422_UNPROCESSABLE_ENTITY)


@extend_schema(request=VerifySerializer, responses={200: dict})
@api_view(["POST"])
def verify(request):
    """Run a policy version's Rego tests in Gavel's sandbox, like `conftest verify`."""
    body = VerifySerializer(data=request.data)
    body.is_valid(raise_exception=True)
    try:
        return Response(services.verify(**body.validated_data))
    except services.CheckRefused as exc:
        return _refused(exc)


@extend_schema(request=ReplaySerializer, responses={200: dict})
@api_view(["POST"])
def replay(request):
    """Replay recorded decisions through a version and count what would change (the impact gate)."""
    body = ReplaySerializer(data=request.data)
    body.is_valid(raise_exception=True)
    try:
        return Response(services.replay_gate(user=request.user, **body.validated_data))
    except services.CheckRefused as exc:
        return _refused(exc)


@extend_schema(responses={(200, "application/gzip"): bytes})
@api_view(["GET"])
@authentication_classes([TokenAuthentication, TokenAsBasicAuthentication, SessionAuthentication])
def policies_tarball(request, environment: str):
    """The environment's published policies as a .tar.gz `conftest pull` accepts."""
    where = Environment.objects.filter(name=environment).first()
    if where is None:
        return _refused(f"there is no environment {environment!r}", status.HTTP_404_NOT_FOUND)
    response = HttpResponse(policy_tarball(where), content_type="application/gzip")
    response["Content-Disposition"] = f'attachment; filename="gavel-{where.name}-policies.tar.gz"'
    response["X-Gavel-Revision"] = revision(where)
    return response


# --- `conftest pull oci://<gavel>/policies/<environment>`: the read side of the OCI distribution API


class AnyAccept(BaseContentNegotiation):
    """Registry clients ask for manifest media types no DRF renderer names; the answers are bytes."""

    def select_parser(self, request, parsers):
        return parsers[0] if parsers else None

    def select_renderer(self, request, renderers, format_suffix=None):
        return renderers[0], renderers[0].media_type


@extend_schema(exclude=True)  # the OCI distribution API, not Gavel's own (README "Checking changes in CI")
class RegistryView(APIView):
    """Basic first: its challenge (`WWW-Authenticate: Basic`) is the one registry clients answer
    with the credentials `docker login` stored, the service account's username and API token."""

    authentication_classes = [TokenAsBasicAuthentication, TokenAuthentication, SessionAuthentication]
    content_negotiation_class = AnyAccept

    def finalize_response(self, request, response, *args, **kwargs):
        response = super().finalize_response(request, response, *args, **kwargs)
        response["Docker-Distribution-API-Version"] = "registry/2.0"
        return response


def _oci_error(code: str, message: str, status_code: int = 404) -> JsonResponse:
    return JsonResponse({"errors": [{"code": code, "message": message}]}, status=status_code)


def _content(data: bytes, media_type: str, digest: str) -> HttpResponse:
    """The bytes with the headers registry clients check (the server drops the body for HEAD)."""
    response = HttpResponse(data, content_type=media_type)
    response["Docker-Content-Digest"] = digest
    response["Content-Length"] = str(len(data))
    response["ETag"] = f'"{digest}"'
    return response


def _artifact(environment: str):
    where = Environment.objects.filter(name=environment).first()
    return None if where is None else registry.artifact(where)


class RegistryBase(RegistryView):
    def get(self, request):
        """`GET /v2/`: a registry client's (or `docker login`'s) check that it may come in."""
        return JsonResponse({})


class RegistryManifest(RegistryView):
    def get(self, request, environment: str, reference: str):
        found = _artifact(environment)
        if found is None:
            return _oci_error("NAME_UNKNOWN", f"there is no environment {environment!r}")
        if not found.answers(reference):
            return _oci_error("MANIFEST_UNKNOWN", f"{reference!r} is not what {environment} runs now: "
                                                  f"pull `{registry.TAG}`")
        return _content(found.manifest, registry.MANIFEST_TYPE, found.digest)


class RegistryBlob(RegistryView):
    def get(self, request, environment: str, digest: str):
        found = _artifact(environment)
        if found is None:
            return _oci_error("NAME_UNKNOWN", f"there is no environment {environment!r}")
        if digest not in found.blobs:
            return _oci_error("BLOB_UNKNOWN", f"{digest} is not in what {environment} runs now")
        return _content(found.blobs[digest], "application/octet-stream", digest)
