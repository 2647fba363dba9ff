"""The policies API: /api/v1/policies/, their versions, publishing requests and publications."""
from django.shortcuts import get_object_or_404
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import mixins, status, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import ValidationError
from rest_framework.response import Response

from core.opa.client import OpaError
from policies.rego.check import RegoCompileError

from . import replay, review, services
from .diffs import version_diff
from .models import Policy, PolicyVersion, Publication, PublishRequest
from .serializers import (
    EnvironmentReasonSerializer,
    PolicySerializer,
    PolicyVersionSerializer,
    PublicationSerializer,
    PublishEventSerializer,
    PublishRequestSerializer,
    ReasonSerializer,
    ReplayWindowSerializer,
)


class SourceRefused(ValidationError):
    """400 with OPA's errors kept as structured data (line numbers stay numbers)."""

    def __init__(self, exc: Exception):
        super().__init__()
        if isinstance(exc, RegoCompileError):
            errors = [{"file": e.file, "line": e.row, "column": e.col, "code": e.code, "message": e.message}
                      for e in exc.errors]
        else:
            errors = [{"message": str(exc)}]
        self.detail = {"source": errors}


class Refused(ValidationError):
    """400 with the refusal in `detail`: failing tests, self-approval, a bad replay window, ..."""

    def __init__(self, exc: Exception):
        super().__init__({"detail": str(exc)})


def _reason(request) -> str:
    serializer = ReasonSerializer(data=request.data)
    serializer.is_valid(raise_exception=True)
    return serializer.validated_data["reason"]


def _where_and_why(request) -> dict:
    """{"reason", "environment"} from the body; an unknown environment is a 400."""
    serializer = EnvironmentReasonSerializer(data=request.data)
    serializer.is_valid(raise_exception=True)
    return serializer.validated_data


class PolicyViewSet(mixins.CreateModelMixin, viewsets.ReadOnlyModelViewSet):
    queryset = Policy.objects.select_related("created_by").prefetch_related("active_versions__environment",
                                                                           "active_versions__version")
    serializer_class = PolicySerializer
    lookup_field = "name"

    def perform_create(self, serializer):
        try:
            serializer.instance = services.create_policy(author=self.request.user, **serializer.validated_data)
        except (RegoCompileError, services.VersionRefused) as exc:
            raise SourceRefused(exc)

    @extend_schema(request=EnvironmentReasonSerializer, responses={202: PublicationSerializer})
    @action(detail=True, methods=["post"])
    def rollback(self, request, name=None):
        """Re-publish, in one environment (default GAVEL_ENVIRONMENT), the version it ran before
        its active one; no second approval needed, other environments untouched."""
        body = _where_and_why(request)
        try:
            publication = review.rollback(self.get_object(), rolled_back_by=request.user, reason=body["reason"],
                                          environment=body["environment"])
        except services.PublishRefused as exc:
            raise Refused(exc)
        return Response(PublicationSerializer(publication).data, status=status.HTTP_202_ACCEPTED)

    @extend_schema(request=ReasonSerializer, responses={200: PolicySerializer})
    @action(detail=True, methods=["post"])
    def retire(self, request, name=None):
        """Remove the policy from every environment; refused while it has decided within GAVEL_RETIRE_AFTER_DAYS."""
        try:
            policy = review.retire(self.get_object(), retired_by=request.user, reason=_reason(request))
        except (services.PublishRefused, OpaError) as exc:
            raise Refused(exc)
        return Response(PolicySerializer(policy).data)

    @extend_schema(responses={200: PublishEventSerializer(many=True)})
    @action(detail=True, methods=["get"])
    def history(self, request, name=None):
        """Every publishing step: requested, approved, rejected, published, rolled back, retired."""
        events = self.get_object().publish_events.select_related("actor", "version")
        page = self.paginate_queryset(events)
        return self.get_paginated_response(PublishEventSerializer(page, many=True).data)


class PolicyVersionViewSet(mixins.CreateModelMixin, viewsets.ReadOnlyModelViewSet):
    """Versions of one policy: /api/v1/policies/{name}/versions/{number}/."""

    serializer_class = PolicyVersionSerializer
    lookup_field = "number"
    queryset = PolicyVersion.objects.select_related("policy", "author")

    def get_queryset(self):
        return super().get_queryset().filter(policy__name=self.kwargs["policy_name"])

    def perform_create(self, serializer):
        policy = get_object_or_404(Policy, name=self.kwargs["policy_name"])
        try:
            serializer.instance = services.save_version(policy, author=self.request.user, **serializer.validated_data)
        except (RegoCompileError, services.VersionRefused) as exc:
            raise SourceRefused(exc)

    @extend_schema(request=EnvironmentReasonSerializer, responses={201: PublishRequestSerializer})
    @action(detail=True, methods=["post"])
    def publish(self, request, policy_name=None, number=None):
        """Ask for this version to be published to an environment (default GAVEL_ENVIRONMENT), with
        a reason. It reaches that environment's OPA instances once someone who neither wrote it
        nor asked approves: POST /api/v1/publish-requests/{id}/approve/."""
        body = _where_and_why(request)
        try:
            publish_request = review.request_publish(self.get_object(), requested_by=request.user,
                                                     reason=body["reason"], environment=body["environment"])
        except services.PublishRefused as exc:
            raise Refused(exc)
        return Response(PublishRequestSerializer(publish_request).data, status=status.HTTP_201_CREATED)

    @extend_schema(parameters=[OpenApiParameter("against", int, description="The other version's number")])
    @action(detail=True, methods=["get"])
    def diff(self, request, policy_name=None, number=None):
        """A line diff of this version against another (`?against=N`, default the previous one)."""
        version = self.get_object()
        try:
            against = int(request.query_params.get("against", version.number - 1))
        except ValueError:
            raise ValidationError({"against": "a version number"})
        other = get_object_or_404(self.get_queryset(), number=against)
        return Response(version_diff(version, other))

    @extend_schema(request=ReplayWindowSerializer, responses={200: dict})
    @action(detail=True, methods=["post"])
    def replay(self, request, policy_name=None, number=None):
        """Replay recorded decisions of the policy through this version in OPA and count what would change."""
        window = ReplayWindowSerializer(data=request.data)
        window.is_valid(raise_exception=True)
        try:
            report = replay.replay_version(self.get_object(), **window.validated_data)
        except replay.ReplayRefused as exc:
            raise Refused(exc)
        return Response(report.as_dict())


class PublicationViewSet(viewsets.ReadOnlyModelViewSet):
    queryset = Publication.objects.select_related("version__policy", "requested_by", "environment", "instance")
    serializer_class = PublicationSerializer
    filterset_fields = ["status", "version__policy__name", "environment__name"]


class PublishRequestViewSet(viewsets.ReadOnlyModelViewSet):
    """Requests to publish a version, and their approval or rejection by a second person."""

    queryset = PublishRequest.objects.select_related("version__policy", "requested_by", "decided_by", "environment")
    serializer_class = PublishRequestSerializer
    filterset_fields = ["status", "version__policy__name", "environment__name"]

    @extend_schema(request=ReasonSerializer, responses={202: PublishRequestSerializer})
    @action(detail=True, methods=["post"])
    def approve(self, request, pk=None):
        """Approve (not as the version's author or the requester): the version is pushed to every OPA
        instance of the request's environment."""
        try:
            approved = review.approve(self.get_object(), approved_by=request.user, note=_reason(request))
        except services.PublishRefused as exc:
            raise Refused(exc)
        return Response(PublishRequestSerializer(approved).data, status=status.HTTP_202_ACCEPTED)

    @extend_schema(request=ReasonSerializer, responses={200: PublishRequestSerializer})
    @action(detail=True, methods=["post"])
    def reject(self, request, pk=None):
        try:
            rejected = review.reject(self.get_object(), rejected_by=request.user, reason=_reason(request))
        except services.PublishRefused as exc:
            raise Refused(exc)
        return Response(PublishRequestSerializer(rejected).data)
