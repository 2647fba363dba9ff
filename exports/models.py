"""Exports of a decision search, each with the manifest an auditor verifies the file against."""
from datetime import datetime, timezone as dt_timezone

from django.conf import settings
from django.db import models
from django.db.models import Q, Subquery, Value
from django.db.models.functions import Coalesce
from django.utils import timezone


class ExportRecord(models.Model):
    """One export of a decision search, and its manifest: what was asked, what the file holds.

    Both deliveries write the file under GAVEL_EXPORT_DIR (a streamed one while it is sent) and keep
    it GAVEL_EXPORT_RETENTION_DAYS; it is downloaded as an archive with the signed manifest
    (exports/services.py). Streamed exports from before signing kept no file (no file_name).
    """

    class Format(models.TextChoices):
        CSV = "csv", "CSV"
        JSONL = "jsonl", "JSON Lines"

    class Delivery(models.TextChoices):
        STREAM = "stream", "Streamed download"
        JOB = "job", "Background job"

    class Status(models.TextChoices):
        QUEUED = "queued", "Queued"
        RUNNING = "running", "Running"
        DONE = "done", "Done"
        FAILED = "failed", "Failed"
        INCOMPLETE = "incomplete", "Stopped before the end (download interrupted)"

    format = models.CharField(max_length=10, choices=Format.choices)
    delivery = models.CharField(max_length=10, choices=Delivery.choices)
    status = models.CharField(max_length=12, choices=Status.choices, default=Status.QUEUED, db_index=True)
    query = models.TextField(blank=True, help_text="The search as a query string of DecisionFilter's fields.")
    readable_filter = models.TextField(blank=True)
    as_of = models.DateTimeField(help_text="Only decisions Gavel had stored by then are exported.")
    expected_rows = models.PositiveBigIntegerField(default=0, help_text="The search's count when the export began.")
    row_count = models.PositiveBigIntegerField(default=0, help_text="Rows written so far; final once done.")
    first_timestamp = models.DateTimeField(null=True, blank=True)
    last_timestamp = models.DateTimeField(null=True, blank=True)
    sha256 = models.CharField(max_length=64, blank=True)
    size_bytes = models.PositiveBigIntegerField(default=0)
    file_name = models.CharField(max_length=200, blank=True, help_text="Under GAVEL_EXPORT_DIR (job exports).")
    gavel_version = models.CharField(max_length=40)
    error = models.TextField(blank=True)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    # The file goes (it holds decision inputs: personal data); the record and its hash stay, so a copy
    # kept elsewhere can still be verified against them (exports/retention.py).
    expired_at = models.DateTimeField(null=True, blank=True, help_text="When the job's file was deleted.")
    expired_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT,
                                   related_name="+", help_text="Who deleted the file early; empty: retention did.")

    class Meta:
        db_table = "audit_exportrecord"  # the table keeps the name the audit app gave it
        ordering = ["-created_at", "-id"]
        indexes = [  # an auditor's finished exports not yet seen (the navigation's count, console/inbox.py)
            models.Index(fields=["created_by", "finished_at"], name="export_ready_by_creator",
                         condition=Q(status="done", expired_at__isnull=True)),
        ]

    def __str__(self) -> str:
        return f"export {self.pk} ({self.format}, {self.status})"

    @property
    def is_expired(self) -> bool:
        return self.expired_at is not None

    @property
    def is_running(self) -> bool:
        return self.status in (self.Status.QUEUED, self.Status.RUNNING)

    @property
    def download_name(self) -> str:
        return f"gavel-decisions-{self.pk}.{self.format}"

    @property
    def manifest_name(self) -> str:
        return f"{self.download_name}.manifest.json"

    @property
    def archive_name(self) -> str:
        """What is downloaded: the data file and its signed manifest in one ZIP."""
        return f"gavel-export-{self.pk}.zip"

    @property
    def has_file(self) -> bool:
        """Finished, written to GAVEL_EXPORT_DIR (streamed exports too, since manifests are signed) and kept."""
        return self.status == self.Status.DONE and bool(self.file_name) and not self.is_expired

    @property
    def count_differs(self) -> bool:
        """The file holds another number of rows than the search counted when the export began
        (decisions deleted by retention meanwhile, or stored in the same instant)."""
        return self.status == self.Status.DONE and self.row_count != self.expected_rows



class ExportsSeen(models.Model):
    """When a person last opened the list of exports: their exports finished after it are "ready"
    (the inbox and the navigation count them; the list marks them new)."""

    user = models.OneToOneField(settings.AUTH_USER_MODEL, primary_key=True, on_delete=models.CASCADE, related_name="+")
    seen_at = models.DateTimeField()


NEVER = datetime(1970, 1, 1, tzinfo=dt_timezone.utc)


def ready_unseen(user):
    """`user`'s own exports that finished, still have their file's record unexpired, and finished after
    they last opened the list of exports (all of them if they never did): one indexed query."""
    seen = ExportsSeen.objects.filter(user=user).values("seen_at")[:1]
    return (ExportRecord.objects.filter(created_by=user, status=ExportRecord.Status.DONE, expired_at__isnull=True)
            .filter(finished_at__gt=Coalesce(Subquery(seen), Value(NEVER))))


def mark_seen(user):
    """`user` has looked at the list of exports now; returns when they had looked before (None: never)."""
    before = ExportsSeen.objects.filter(user=user).values_list("seen_at", flat=True).first()
    ExportsSeen.objects.update_or_create(user=user, defaults={"seen_at": timezone.now()})
    return before
