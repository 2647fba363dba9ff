"""The rollout API: environments and their kill switch, canary settings, exceptions."""
from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.core.exceptions import ValidationError as DjangoValidationError
from django.shortcuts import get_object_or_404
from drf_spectacular.utils import extend_schema
from rest_framework import mixins, serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import PermissionDenied, ValidationError
from rest_framework.permissions import BasePermission
from rest_framework.response import Response

from . import canary, policy_exceptions
from .models import (
    ActiveVersion, CanarySetting, Environment, Mode, OpaCredential, OpaInstance, Policy, PolicyException,
)


class HasPerm(BasePermission):
    """Permission classes built from a permission name: HasPerm.of("policies.x")."""

    perm = ""

    @classmethod
    def of(cls, perm):
        return type(f"Has_{perm}", (cls,), {"perm": perm})

    def has_permission(self, request, view):
        return request.user.has_perm(self.perm)


class OpaCredentialSerializer(serializers.ModelSerializer):
    """One of the tokens an instance presents to Gavel: when and how used, never the token."""

    state = serializers.CharField(read_only=True)

    class Meta:
        model = OpaCredential
        fields = ["id", "state", "created_at", "last_used_at", "expires_at", "revoked_at"]
        read_only_fields = fields


class OpaInstanceSerializer(serializers.ModelSerializer):
    """An OPA instance as the API shows it; its tokens never leave Gavel."""

    credentials = OpaCredentialSerializer(many=True, read_only=True)
    gavel_token_state = serializers.CharField(source="token_state", read_only=True)
    gavel_token_issued_at = serializers.DateTimeField(source="token_issued_at", read_only=True)
    gavel_token_detail = serializers.CharField(source="token_detail", read_only=True)
    decommissioned_by = serializers.StringRelatedField(read_only=True)

    class Meta:
        model = OpaInstance
        fields = ["name", "url", "last_status_at", "healthy", "active_revision", "status_detail", "credentials",
                  "gavel_token_state", "gavel_token_issued_at", "gavel_token_detail", "decommissioned_at",
                  "decommissioned_by"]
        read_only_fields = fields


class RunningSerializer(serializers.ModelSerializer):
    """A policy the environment runs: which version, since when."""

    policy = serializers.SlugRelatedField(slug_field="name", read_only=True)
    version = serializers.IntegerField(source="version.number", read_only=True)

    class Meta:
        model = ActiveVersion
        fields = ["policy", "version", "since"]
        read_only_fields = fields


class EnvironmentSerializer(serializers.ModelSerializer):
    kill_switch_engaged = serializers.BooleanField(read_only=True)
    instances = OpaInstanceSerializer(many=True, read_only=True)
    policies = RunningSerializer(source="active_versions", many=True, read_only=True)

    class Meta:
        model = Environment
        fields = ["name", "opa_url", "delivery", "kill_switch_engaged", "instances", "policies"]
        read_only_fields = fields


class KillSwitchSerializer(serializers.Serializer):
    engaged = serializers.BooleanField()
    reason = serializers.CharField(max_length=500)


class EnvironmentViewSet(viewsets.ReadOnlyModelViewSet):
    queryset = Environment.objects.prefetch_related("instances__credentials", "instances__decommissioned_by",
                                                    "active_versions__policy",
                                                    "active_versions__version")
    serializer_class = EnvironmentSerializer
    lookup_field = "name"

    @extend_schema(request=KillSwitchSerializer, responses={200: EnvironmentSerializer})
    @action(detail=True, methods=["post"], url_path="kill-switch",
            permission_classes=[HasPerm.of("policies.add_killswitchchange")])
    def kill_switch(self, request, name=None):
        """Engage (everything in dry-run at once) or release the environment's kill switch."""
        body = KillSwitchSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        environment = self.get_object()
        canary.set_kill_switch(environment, changed_by=request.user, **body.validated_data)
        return Response(EnvironmentSerializer(environment).data)


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
        serializer.instance = canary.change_rollout(policy, environment, rollout, changed_by=self.request.user,
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
    @action(detail=True, methods=["post"], permission_classes=[HasPerm.of("policies.approve_policyexception")])
    def approve(self, request, pk=None):
        """Approve a pending exception; the requester cannot approve their own."""
        return self._decide(request, pk, lambda e, u: policy_exceptions.approve_exception(e, approved_by=u))

    @extend_schema(request=None, responses={200: PolicyExceptionSerializer})
    @action(detail=True, methods=["post"], permission_classes=[HasPerm.of("policies.approve_policyexception")])
    def revoke(self, request, pk=None):
        return self._decide(request, pk, lambda e, u: policy_exceptions.revoke_exception(e, revoked_by=u))
