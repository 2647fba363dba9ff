"""The rollout API: canary settings and exceptions (the kill switch is on each environment: fleet/api.py)."""
from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.core.exceptions import ValidationError as DjangoValidationError
from django.shortcuts import get_object_or_404
from drf_spectacular.utils import extend_schema
from rest_framework import mixins, serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import PermissionDenied, ValidationError
from rest_framework.response import Response

from fleet.models import Environment
from policies.models import Policy

from . import canary, services
from . import exceptions as policy_exceptions
from .models import CanarySetting, Mode, PolicyException


class CanarySettingSerializer(serializers.ModelSerializer):
    policy = serializers.SlugRelatedField(slug_field="name", queryset=Policy.objects.all())
    environment = serializers.SlugRelatedField(slug_field="name", queryset=Environment.objects.all())
    changed_by = serializers.StringRelatedField()
    mode = serializers.ChoiceField(choices=Mode.choices)

    class Meta:
        model = CanarySetting
        fields = ["id", "policy", "environment", "mode", "enforce_percentage", "enforce_users", "enforce_agents",
                  "dry_run_users", "user_field", "agent_field", "changed_by", "reason", "created_at"]
        read_only_fields = ["id", "changed_by", "created_at"]


class CanarySettingViewSet(mixins.CreateModelMixin, viewsets.ReadOnlyModelViewSet):
    """Each POST is a new rollout state for a policy in an environment; the list is its history."""

    queryset = CanarySetting.objects.select_related("policy", "environment", "changed_by")
    serializer_class = CanarySettingSerializer
    filterset_fields = {"policy__name": ["exact"], "environment__name": ["exact"]}

    def perform_create(self, serializer):
        data = dict(serializer.validated_data)
        policy, environment, reason = data.pop("policy"), data.pop("environment"), data.pop("reason")
        rollout = canary.Rollout(**{k: tuple(v) if isinstance(v, list) else v for k, v in data.items()})
        serializer.instance = services.change_rollout(policy, environment, rollout, changed_by=self.request.user,
                                                    reason=reason)


class PolicyExceptionSerializer(serializers.ModelSerializer):
    policy = serializers.SlugRelatedField(slug_field="name", queryset=Policy.objects.all())
    environment = serializers.SlugRelatedField(slug_field="name", queryset=Environment.objects.all())
    requested_by = serializers.StringRelatedField()
    approved_by = serializers.StringRelatedField()
    rejected_by = serializers.StringRelatedField()
    revoked_by = serializers.StringRelatedField()
    status = serializers.CharField(read_only=True)

    class Meta:
        model = PolicyException
        fields = ["id", "policy", "environment", "match", "reason_contains", "justification", "ticket",
                  "expires_at", "status", "requested_by", "approved_by", "approved_at", "rejected_by", "rejected_at",
                  "decision_comment", "revoked_at", "revoked_by", "revoke_reason", "created_at"]
        read_only_fields = ["id", "status", "requested_by", "approved_by", "approved_at", "rejected_by",
                            "rejected_at", "decision_comment", "revoked_at", "revoked_by", "revoke_reason",
                            "created_at"]


class CommentSerializer(serializers.Serializer):
    comment = serializers.CharField(help_text="Why you approve or reject it; required, shown on the exception.")


class RevokeSerializer(serializers.Serializer):
    reason = serializers.CharField(max_length=500, help_text="Why it ends before its expiry; required.")


def _refused(exc):
    if isinstance(exc, DjangoPermissionDenied):
        return PermissionDenied(str(exc))
    return ValidationError({"detail": exc.messages})


class PolicyExceptionViewSet(mixins.CreateModelMixin, viewsets.ReadOnlyModelViewSet):
    queryset = PolicyException.objects.select_related("policy", "environment", "requested_by", "approved_by",
                                                      "rejected_by", "revoked_by")
    serializer_class = PolicyExceptionSerializer
    filterset_fields = {"policy__name": ["exact"], "environment__name": ["exact"]}

    def perform_create(self, serializer):
        try:
            serializer.instance = policy_exceptions.request_exception(
                requested_by=self.request.user, **serializer.validated_data
            )
        except DjangoValidationError as exc:
            raise _refused(exc)

    def _decide(self, request, pk, decide, serializer_class, field):
        exception = get_object_or_404(PolicyException, pk=pk)
        given = serializer_class(data=request.data)
        given.is_valid(raise_exception=True)
        try:
            decide(exception, request.user, given.validated_data[field])
        except (DjangoPermissionDenied, DjangoValidationError) as exc:
            raise _refused(exc)
        exception.refresh_from_db()
        return Response(PolicyExceptionSerializer(exception).data, status=status.HTTP_200_OK)

    @extend_schema(request=CommentSerializer, responses={200: PolicyExceptionSerializer})
    @action(detail=True, methods=["post"])
    def approve(self, request, pk=None):
        """Approve a pending exception with a comment; the requester cannot approve their own."""
        return self._decide(request, pk, lambda e, u, text: policy_exceptions.approve_exception(
            e, approved_by=u, comment=text), CommentSerializer, "comment")

    @extend_schema(request=CommentSerializer, responses={200: PolicyExceptionSerializer})
    @action(detail=True, methods=["post"])
    def reject(self, request, pk=None):
        """Reject a pending exception with a comment; it never reaches OPA."""
        return self._decide(request, pk, lambda e, u, text: policy_exceptions.reject_exception(
            e, rejected_by=u, comment=text), CommentSerializer, "comment")

    @extend_schema(request=RevokeSerializer, responses={200: PolicyExceptionSerializer})
    @action(detail=True, methods=["post"])
    def revoke(self, request, pk=None):
        """End an active exception now, with a reason; OPA drops it within seconds."""
        return self._decide(request, pk, lambda e, u, text: policy_exceptions.revoke_exception(
            e, revoked_by=u, reason=text), RevokeSerializer, "reason")
