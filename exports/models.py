"""Exports of a decision search, each with the manifest an auditor verifies the file against."""
from django.conf import settings
from django.db import models


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

