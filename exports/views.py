"""Export pages: start an export of the current search, follow a job, list every export."""
from pathlib import Path

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import permission_required
from django.core.exceptions import ValidationError
from django.core.paginator import Paginator
from django.http import FileResponse, Http404, HttpResponse, HttpResponseBadRequest, StreamingHttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views.decorators.http import require_POST

from core.display.times import utc_words

from . import retention as export_retention
from . import services as exports
from . import signing
from .models import ExportRecord, mark_seen

VERIFIER = Path(__file__).resolve().parent / "verify_gavel_export.py"


def _archive_response(chunks, record: ExportRecord) -> StreamingHttpResponse:
    response = StreamingHttpResponse(chunks, content_type="application/zip")
    response["Content-Disposition"] = f'attachment; filename="{record.archive_name}"'
    response["X-Gavel-Export"] = str(record.pk)
    response["X-Gavel-Manifest"] = reverse("exports:manifest", args=[record.pk])
    return response


def streamed_response(record: ExportRecord) -> StreamingHttpResponse:
    """The archive as its rows are read: the data file, then its signed manifest."""
    return _archive_response(exports.stream_export(record), record)


def file_response(record: ExportRecord) -> StreamingHttpResponse:
    """A finished export's kept file, in its archive. Raises ExportGone (410) once it was deleted,
    Http404 if it never had one."""
    try:
        handle = export_retention.open_file(record)
    except export_retention.NoFile as exc:
        raise Http404(str(exc)) from None
    return _archive_response(exports.archive_of(record, handle), record)


@require_POST
@permission_required("core.export_decision", raise_exception=True)
def export_new(request):
    """Export the search in `query`: streamed now, or (large, or asked for) as a job to follow."""
    try:
        record = exports.start_export(request.user, request.POST.get("query", ""), request.POST.get("format", ""),
                                      as_job=bool(request.POST.get("as_job")), as_of=request.POST.get("as_of"))
    except ValidationError as exc:
        return HttpResponseBadRequest(" ".join(exc.messages), content_type="text/plain; charset=utf-8")
    if record.delivery == ExportRecord.Delivery.JOB:
        return redirect("exports:detail", pk=record.pk)
    return streamed_response(record)


@permission_required("exports.view_exportrecord", raise_exception=True)
def export_list(request):
    records = ExportRecord.objects.select_related("created_by")
    page = Paginator(records, 50).get_page(request.GET.get("page"))
    seen_before = mark_seen(request.user)  # the navigation's "exports ready" counts from now on
    for record in page.object_list:
        record.is_new = (record.created_by_id == request.user.pk and record.status == ExportRecord.Status.DONE
                         and (seen_before is None or (record.finished_at and record.finished_at > seen_before)))
    return render(request, "exports/export_list.html",
                  {"page": page, "retention_days": settings.GAVEL_EXPORT_RETENTION_DAYS,
                   "public_key": signing.public_key(), "key_id": signing.key_id()})


@permission_required("exports.view_exportrecord", raise_exception=True)
def export_detail(request, pk):
    """A job's progress and manifest; htmx polls the status partial until the job is over."""
    record = get_object_or_404(ExportRecord.objects.select_related("created_by", "expired_by"), pk=pk)
    template = "exports/_status.html" if request.htmx else "exports/export_detail.html"
    manifest = exports.manifest(record)
    window = {key: utc_words(value) for key, value in (manifest.get("window") or {}).items()}
    return render(request, template, {"record": record, "manifest": manifest, "window": window,
                                      "public_key": signing.public_key(),
                                      "may_delete": export_retention.may_delete(request.user, record)})


@permission_required("core.export_decision", raise_exception=True)
def export_download(request, pk):
    record = get_object_or_404(ExportRecord.objects.select_related("expired_by"), pk=pk)
    try:
        return file_response(record)
    except export_retention.ExportGone as exc:
        return render(request, "exports/gone.html", {"record": record, "message": str(exc)}, status=410)


@require_POST
def export_delete_file(request, pk):
    """Delete an export's file early (its owner); the record and manifest stay. PermissionDenied is a 403."""
    record = get_object_or_404(ExportRecord, pk=pk)
    try:
        export_retention.delete_file(record, request.user)
    except ValidationError as exc:
        messages.error(request, " ".join(exc.messages))
    else:
        messages.success(request, f"The file of export {record.pk} was deleted; its record and manifest stay.")
    return redirect("exports:detail", pk=record.pk)


@permission_required("exports.view_exportrecord", raise_exception=True)
def export_manifest(request, pk):
    record = get_object_or_404(ExportRecord.objects.select_related("created_by"), pk=pk)
    response = HttpResponse(exports.manifest_json(record), content_type="application/json; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="{record.download_name}.manifest.json"'
    return response


@permission_required("exports.view_exportrecord", raise_exception=True)
def export_verifier(request):
    """The stand-alone verifier (Python and `cryptography` only), to hand over with an export."""
    return FileResponse(VERIFIER.open("rb"), as_attachment=True, filename=VERIFIER.name,
                        content_type="text/x-python; charset=utf-8")


@permission_required("exports.view_exportrecord", raise_exception=True)
def export_public_key(request):
    """Gavel's export signing public key (base64), as the verifier's --public-key takes it."""
    response = HttpResponse(signing.public_key() + "\n", content_type="text/plain; charset=utf-8")
    response["Content-Disposition"] = 'attachment; filename="gavel-export-public-key.txt"'
    return response
