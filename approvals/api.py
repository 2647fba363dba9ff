"""The approvals API, for enforcement points: hold an action, wait for its outcome, review it."""
import redis
from django.conf import settings
from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.core.exceptions import ValidationError as DjangoValidationError
from django.shortcuts import get_object_or_404
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import mixins, serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import PermissionDenied, ValidationError
from rest_framework.response import Response

from core.outcomes import derive_outcome
from policies.models import Policy

from . import services as approvals
from . import waiting
from .filters import HeldActionFilter
from .models import HeldAction
from .notifications import CallbackRefused
from .wording import describe


class HeldActionSerializer(serializers.ModelSerializer):
    policy = serializers.SlugRelatedField(slug_field="name", read_only=True)
    request = serializers.SerializerMethodField()
    approvals = serializers.IntegerField(read_only=True)

    class Meta:
        model = HeldAction
        fields = ["decision_id", "status", "policy", "path", "request", "reasons", "requester", "risk",
                  "approvals", "approvals_required", "created_from", "created_at", "expires_at", "escalated_at",
                  "decided_at", "valid_until", "consumed_at", "input"]
        read_only_fields = fields

    def get_request(self, held) -> str:
        return describe(held.input)


class HoldRequestSerializer(serializers.Serializer):
    decision_id = serializers.CharField(max_length=100)
    path = serializers.CharField(max_length=500)
    input = serializers.JSONField()
    result = serializers.JSONField()
    callback_url = serializers.URLField(required=False, allow_blank=True)

    def validate_result(self, result):
        if derive_outcome(result)[0] != "require_approval":
            raise serializers.ValidationError("this decision does not require approval")
        return result


class ReviewSerializer(serializers.Serializer):
    approve = serializers.BooleanField()
    comment = serializers.CharField(max_length=2000)


def _policy_for(path: str, result) -> Policy | None:
    name = result.get("policy") if isinstance(result, dict) else None
    return Policy.objects.filter(name=name).first() if isinstance(name, str) else None


class HeldActionViewSet(mixins.CreateModelMixin, viewsets.ReadOnlyModelViewSet):
    queryset = HeldAction.objects.select_related("policy").prefetch_related("votes")
    serializer_class = HeldActionSerializer
    lookup_field = "decision_id"
    lookup_value_regex = "[^/]+"
    filterset_class = HeldActionFilter

    @extend_schema(request=HoldRequestSerializer, responses={201: HeldActionSerializer, 200: HeldActionSerializer})
    def create(self, request, *args, **kwargs):
        """Hold an action that needs approval (the decision log may have done so already)."""
        body = HoldRequestSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        data = body.validated_data
        try:
            held, created = approvals.hold(
                decision_id=data["decision_id"], path=data["path"], request=data["input"], result=data["result"],
                created_from="api", policy=_policy_for(data["path"], data["result"]),
                callback_url=data.get("callback_url", ""), submitted_by=request.user,
            )
        except CallbackRefused as exc:
            raise ValidationError({"callback_url": str(exc)})
        except DjangoPermissionDenied as exc:
            raise PermissionDenied(str(exc))
        return Response(HeldActionSerializer(held).data, status=status.HTTP_201_CREATED if created else 200)

    @extend_schema(parameters=[OpenApiParameter("wait", OpenApiTypes.INT, description=(
        "Seconds to wait for a decision (long polling). The server waits at most "
        "GAVEL_APPROVAL_HOLD_SECONDS; still pending, it answers with Retry-After: ask again then."))],
        responses={200: HeldActionSerializer, 429: OpenApiTypes.OBJECT})
    def retrieve(self, request, *args, **kwargs):
        """The held action; with ?wait=N the answer comes as soon as it is decided, or after a short wait."""
        held = self.get_object()
        try:
            wait = min(float(request.query_params.get("wait", 0)), settings.GAVEL_APPROVAL_MAX_WAIT_SECONDS)
        except ValueError:
            raise ValidationError({"wait": "a number of seconds"})
        if held.status == HeldAction.Status.PENDING and wait > 0:
            try:
                with waiting.slot(request.user.pk):
                    waiting.wait_for_decision(held.decision_id, waiting.hold_seconds(wait))
            except waiting.TooManyWaits as exc:
                return Response({"detail": str(exc)}, status=status.HTTP_429_TOO_MANY_REQUESTS,
                                headers={"Retry-After": str(waiting.RETRY_AFTER_SECONDS)})
            except redis.RedisError:
                pass  # nobody waits without Redis: the answer comes at once
            held.refresh_from_db()
        headers = {"Retry-After": str(waiting.RETRY_AFTER_SECONDS)} if held.status == HeldAction.Status.PENDING else {}
        return Response(HeldActionSerializer(held).data, headers=headers)

    @extend_schema(request=ReviewSerializer, responses={200: HeldActionSerializer})
    @action(detail=True, methods=["post"])
    def review(self, request, decision_id=None):
        """Approve or reject, with a comment. Nobody reviews their own request."""
        body = ReviewSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        held = get_object_or_404(HeldAction, decision_id=decision_id)
        try:
            held = approvals.review(held, reviewer=request.user, **body.validated_data)
        except DjangoPermissionDenied as exc:
            raise PermissionDenied(str(exc))
        except DjangoValidationError as exc:
            raise ValidationError({"detail": exc.messages})
        return Response(HeldActionSerializer(held).data)
