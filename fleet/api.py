"""The fleet API: environments (with their kill switch), their OPA instances and tokens
(credentials.py, opa_authz.py), and decommissioning (instances.py).

A token is in the answer that issues it, once; every other answer shows only its state."""
from django.db import transaction
from django.shortcuts import get_object_or_404
from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import mixins, serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import ValidationError
from rest_framework.response import Response

from policies.models import ActiveVersion
from rollout import services as rollout

from . import credentials as opa_credentials
from . import instances, opa_authz
from .models import Environment, OpaCredential, OpaInstance


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
    @action(detail=True, methods=["post"], url_path="kill-switch")
    def kill_switch(self, request, name=None):
        """Engage (everything in dry-run at once) or release the environment's kill switch."""
        body = KillSwitchSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        environment = self.get_object()
        rollout.set_kill_switch(environment, changed_by=request.user, **body.validated_data)
        return Response(EnvironmentSerializer(environment).data)


class NewInstanceSerializer(serializers.Serializer):
    name = serializers.SlugField(max_length=100)
    url = serializers.URLField(required=False, allow_blank=True, default="")


IssuedToken = inline_serializer("IssuedToken", {
    "instance": OpaInstanceSerializer(), "credential": OpaCredentialSerializer(),
    "token": serializers.CharField(help_text="Shown this once; Gavel keeps only its SHA-256."),
})


class OpaInstanceViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    serializer_class = OpaInstanceSerializer
    lookup_field = "name"
    lookup_value_regex = r"[-\w]+"

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):  # the schema generator has no URL kwargs
            return OpaInstance.objects.none()
        return (OpaInstance.objects.filter(environment__name=self.kwargs["environment_name"])
                .select_related("environment", "decommissioned_by").prefetch_related("credentials"))

    def _issued(self, instance, credential, token):
        instance = self.get_queryset().get(pk=instance.pk)
        response = Response({"instance": OpaInstanceSerializer(instance).data,
                             "credential": OpaCredentialSerializer(credential).data, "token": token},
                            status=status.HTTP_201_CREATED)
        response["Cache-Control"] = "no-store"
        return response

    @extend_schema(request=NewInstanceSerializer, responses={201: IssuedToken})
    def create(self, request, environment_name=None):
        """Add an OPA instance with its own token to Gavel (in the answer, once). A decommissioned
        instance's name puts it back in service, with its history and this new token."""
        environment = get_object_or_404(Environment, name=environment_name)
        body = NewInstanceSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        problem = opa_credentials.instance_problem(environment, **body.validated_data)
        if problem:
            raise ValidationError({"name": [problem]})
        instance, token = opa_credentials.add_instance(environment, by=request.user, **body.validated_data)
        return self._issued(instance, instance.credentials.first(), token)  # the newest: a re-added one has old ones

    @extend_schema(request=None, responses={201: IssuedToken})
    @action(detail=True, methods=["post"], url_path="tokens")
    def tokens(self, request, environment_name=None, name=None):
        """Issue a new token for the instance; its usable tokens stay valid until this one is first
        used or GAVEL_OPA_TOKEN_GRACE_HOURS pass."""
        instance = self.get_object()
        try:
            credential, token = opa_credentials.issue_token(instance, by=request.user)
        except instances.InstanceDecommissioned as exc:
            raise ValidationError({"detail": [str(exc)]})
        return self._issued(instance, credential, token)

    @extend_schema(request=None, responses={200: OpaCredentialSerializer})
    @action(detail=True, methods=["post"], url_path=r"tokens/(?P<credential>[0-9]+)/revoke",
            url_name="revoke-token")
    def revoke_token(self, request, environment_name=None, name=None, credential=None):
        """The token stops working at once."""
        credential = get_object_or_404(self.get_object().credentials, pk=credential)
        return Response(OpaCredentialSerializer(opa_credentials.revoke(credential, by=request.user)).data)

    @extend_schema(request=None, responses={202: OpaInstanceSerializer})
    @action(detail=True, methods=["post"], url_path="rotate-gavel-token")
    def rotate_gavel_token(self, request, environment_name=None, name=None):
        """Roll Gavel's token to this OPA: the worker adds the new one to OPA, switches, removes the old."""
        try:
            with transaction.atomic():
                instance = opa_authz.start_rotation(self.get_object())
                opa_authz.enqueue_rotation(instance)
        except opa_authz.RotationRefused as exc:
            raise ValidationError({"detail": [str(exc)]})
        return Response(OpaInstanceSerializer(self.get_queryset().get(pk=instance.pk)).data,
                        status=status.HTTP_202_ACCEPTED)

    @extend_schema(request=None, responses={200: OpaInstanceSerializer})
    @action(detail=True, methods=["post"], url_path="decommission")
    def decommission(self, request, environment_name=None, name=None):
        """Take the instance out of service: its tokens are revoked, Gavel stops publishing to it and
        waiting for it; its publications, drift alerts and decisions stay. Repeating it changes nothing."""
        instance = instances.decommission(self.get_object(), by=request.user)
        return Response(OpaInstanceSerializer(self.get_queryset().get(pk=instance.pk)).data)
