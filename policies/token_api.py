"""The API for an environment's OPA instances and their tokens (opa_credentials.py, opa_authz.py),
and their decommissioning (instances.py).

A token is in the answer that issues it, once; every other answer shows only its state."""
from django.db import transaction
from django.shortcuts import get_object_or_404
from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import mixins, serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import ValidationError
from rest_framework.response import Response

from . import instances, opa_authz, opa_credentials
from .models import Environment, OpaInstance
from .rollout_api import HasPerm, OpaCredentialSerializer, OpaInstanceSerializer

MANAGE = HasPerm.of("policies.manage_opa_credentials")


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

    def get_permissions(self):
        reading = self.action in ("list", "retrieve")
        return [(HasPerm.of("policies.view_environment") if reading else MANAGE)()]

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
