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
    status = serializers.CharField(read_only=True)

    class Meta:
        model = PolicyException
        fields = ["id", "policy", "environment", "match", "reason_contains", "justification", "ticket",
                  "expires_at", "status", "requested_by", "approved_by", "approved_at", "revoked_at", "created_at"]
        read_only_fields = ["id", "status", "requested_by", "approved_by", "approved_at", "revoked_at",
                            "created_at"]


def _refused(exc):
    if isinstance(exc, DjangoPermissionDenied):
        return PermissionDenied(str(exc))
    return ValidationError({"detail": exc.messages})


class PolicyExceptionViewSet(mixins.CreateModelMixin, viewsets.ReadOnlyModelViewSet):
    queryset = PolicyException.objects.select_related("policy", "environment", "requested_by", "approved_by")
    serializer_class = PolicyExceptionSerializer
    filterset_fields = {"policy__name": ["exact"], "environment__name": ["exact"]}

    def perform_create(self, serializer):
        try:
            serializer.instance = policy_exceptions.request_exception(
                requested_by=self.request.user, **serializer.validated_data
            )
        except DjangoValidationError as exc:
            raise _refused(exc)

    def _decide(self, request, pk, decide):
        exception = get_object_or_404(PolicyException, pk=pk)
        try:
            decide(exception, request.user)
        except (DjangoPermissionDenied, DjangoValidationError) as exc:
            raise _refused(exc)
        exception.refresh_from_db()
        return Response(PolicyExceptionSerializer(exception).data, status=status.HTTP_200_OK)

    @extend_schema(request=None, responses={200: PolicyExceptionSerializer})
    @action(detail=True, methods=["post"])
    def approve(self, request, pk=None):
        """Approve a pending exception; the requester cannot approve their own."""
        return self._decide(request, pk, lambda e, u: policy_exceptions.approve_exception(e, approved_by=u))

    @extend_schema(request=None, responses={200: PolicyExceptionSerializer})
    @action(detail=True, methods=["post"])
    def revoke(self, request, pk=None):
        return self._decide(request, pk, lambda e, u: policy_exceptions.revoke_exception(e, revoked_by=u))
