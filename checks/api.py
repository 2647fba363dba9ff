"""The API `gavel` (gavel_cli/) calls, with a user's token (a CI service account's): check
documents, run a policy's Rego tests, replay a version, and download the environment's
published policies for `conftest pull`. Each needs checks.run_check (console/roles.py's route table)."""
from __future__ import annotations

from django.http import HttpResponse
from drf_spectacular.extensions import OpenApiAuthenticationExtension
from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.authentication import BasicAuthentication, SessionAuthentication, TokenAuthentication
from rest_framework.authtoken.models import Token
from rest_framework.decorators import api_view, authentication_classes
from rest_framework.exceptions import AuthenticationFailed
from rest_framework.response import Response

from fleet.models import Environment

from . import services
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
