"""The policies API: /api/v1/policies/, their versions, and publications."""
from django.shortcuts import get_object_or_404
from drf_spectacular.utils import extend_schema
from rest_framework import mixins, status, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import ValidationError
from rest_framework.permissions import BasePermission
from rest_framework.response import Response

from . import services
from .models import Policy, PolicyVersion, Publication
from .rego import RegoCompileError
from .serializers import PolicySerializer, PolicyVersionSerializer, PublicationSerializer


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


class CanPublish(BasePermission):
    def has_permission(self, request, view):
        return request.user.has_perm("policies.publish_policyversion")


class PolicyViewSet(mixins.CreateModelMixin, viewsets.ReadOnlyModelViewSet):
    queryset = Policy.objects.select_related("active_version", "created_by")
    serializer_class = PolicySerializer
    lookup_field = "name"

    def perform_create(self, serializer):
        try:
            serializer.instance = services.create_policy(author=self.request.user, **serializer.validated_data)
        except (RegoCompileError, services.VersionRefused) as exc:
            raise SourceRefused(exc)


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

    @extend_schema(request=None, responses={202: PublicationSerializer})
    @action(detail=True, methods=["post"], permission_classes=[CanPublish])
    def publish(self, request, policy_name=None, number=None):
        """Queue a push of this version to OPA; poll the publication for its outcome."""
        publication = services.request_publication(self.get_object(), requested_by=request.user)
        return Response(PublicationSerializer(publication).data, status=status.HTTP_202_ACCEPTED)


class PublicationViewSet(viewsets.ReadOnlyModelViewSet):
    queryset = Publication.objects.select_related("version__policy", "requested_by")
    serializer_class = PublicationSerializer
    filterset_fields = ["status", "version__policy__name"]
