"""The exports API: every export with its manifest; start one; download a job's file."""
from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.core.exceptions import ValidationError as DjangoValidationError
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import mixins, serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import PermissionDenied, ValidationError
from rest_framework.response import Response

from . import retention as export_retention
from . import services as exports
from .models import ExportRecord
from .views import file_response, streamed_response


class ExportRecordSerializer(serializers.ModelSerializer):
    exported_by = serializers.CharField(source="created_by.username", read_only=True)
    expired_by = serializers.CharField(source="expired_by.username", read_only=True, allow_null=True, default=None,
                                       help_text="Who deleted the file early; null when retention did (or not yet).")
    manifest = serializers.SerializerMethodField()

    class Meta:
        model = ExportRecord
        fields = ["id", "format", "delivery", "status", "query", "readable_filter", "expected_rows", "row_count",
                  "sha256", "size_bytes", "exported_by", "created_at", "finished_at", "error", "expired_at",
                  "expired_by", "manifest"]
        read_only_fields = fields

    def get_manifest(self, record) -> dict:
        return exports.manifest(record)


class ExportRequestSerializer(serializers.Serializer):
    query = serializers.CharField(allow_blank=True, default="", help_text="The search, e.g. outcome=deny&q=budget")
    format = serializers.ChoiceField(choices=ExportRecord.Format.choices)
    as_job = serializers.BooleanField(default=True, help_text="false streams the archive in the answer, when small")
    as_of = serializers.DateTimeField(required=False, allow_null=True, default=None,
                                      help_text="Export the decisions stored by then (default now; not in the future)")


class ExportRecordViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    queryset = ExportRecord.objects.select_related("created_by", "expired_by")
    serializer_class = ExportRecordSerializer

    @extend_schema(request=ExportRequestSerializer, responses={202: ExportRecordSerializer})
    def create(self, request):
        """Start an export: a job (202, follow its status) or, with as_job=false and a small search, the archive."""
        body = ExportRequestSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        try:
            record = exports.start_export(request.user, body.validated_data["query"], body.validated_data["format"],
                                          as_job=body.validated_data["as_job"], as_of=body.validated_data["as_of"])
        except DjangoValidationError as exc:
            raise ValidationError({"query": exc.messages}) from None
        except DjangoPermissionDenied as exc:
            raise PermissionDenied(str(exc)) from None
        if record.delivery == ExportRecord.Delivery.STREAM:
            return streamed_response(record)
        return Response(self.get_serializer(record).data, status=status.HTTP_202_ACCEPTED)

    @extend_schema(responses={(200, "application/zip"): bytes,
                              410: OpenApiResponse(description="The file was deleted: {\"detail\": why and when}")})
    @action(detail=True, methods=["get"])
    def download(self, request, pk=None):
        """A finished export's archive: its file and signed manifest (404 until it is done, and for
        streamed exports from before signing, which kept none; 410 once it was deleted)."""
        try:
            return file_response(self.get_object())
        except export_retention.ExportGone as exc:
            return Response({"detail": str(exc)}, status=status.HTTP_410_GONE)

    @extend_schema(request=None, responses={200: ExportRecordSerializer})
    @action(detail=True, methods=["post"], url_path="delete-file")
    def delete_file(self, request, pk=None):
        """Delete a finished export's file before retention would (its owner); the record and manifest stay."""
        try:
            record = export_retention.delete_file(self.get_object(), request.user)
        except DjangoPermissionDenied as exc:
            raise PermissionDenied(str(exc)) from None
        except DjangoValidationError as exc:
            raise ValidationError({"detail": exc.messages}) from None
        return Response(self.get_serializer(record).data)
