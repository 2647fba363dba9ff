"""Decision-log batches as OPA delivered them, and the decisions stored from them."""
from django.contrib.postgres.fields import ArrayField
from django.contrib.postgres.indexes import GinIndex
from django.db import models


class LogBatch(models.Model):
    """A decision-log upload from OPA, kept exactly as received until the worker stores it.

    Staging the gzip body in Postgres is what lets Gavel answer 204 safely: once this row
    commits, the batch survives any crash, and the worker can store it (again) later.
    """

    class Status(models.TextChoices):
        QUEUED = "queued", "Queued"
        STORED = "stored", "Stored"

    received_at = models.DateTimeField(auto_now_add=True, db_index=True)
    body_gz = models.BinaryField()
    event_count = models.PositiveIntegerField()
    remote_addr = models.GenericIPAddressField(null=True, blank=True)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.QUEUED)
    stored_at = models.DateTimeField(null=True, blank=True)
    stored_count = models.PositiveIntegerField(default=0)
    duplicate_count = models.PositiveIntegerField(default=0)

    class Meta:
        indexes = [models.Index(fields=["status", "received_at"])]


class Outcome(models.TextChoices):
    ALLOW = "allow", "Allow"
    DENY = "deny", "Deny"
    REQUIRE_APPROVAL = "require_approval", "Require approval"
    WOULD_DENY = "would_deny", "Dry-run: would deny"
    UNDEFINED = "undefined", "Undefined"


class VersionSource(models.TextChoices):
    """How Gavel knows which policy version made a decision."""

    REPORTED = "reported", "Reported by Gavel's entrypoint"
    PUBLICATION = "publication", "Active publication at decision time"
    UNKNOWN = "unknown", "Unknown"


class Decision(models.Model):
    decision_id = models.CharField(max_length=100, unique=True)
    timestamp = models.DateTimeField(db_index=True)
    path = models.CharField(max_length=500, db_index=True)
    input = models.JSONField(null=True, blank=True)
    result = models.JSONField(null=True, blank=True)
    outcome = models.CharField(max_length=20, choices=Outcome.choices, db_index=True)
    reasons = ArrayField(models.TextField(), default=list, blank=True)
    policy = models.ForeignKey("policies.Policy", null=True, blank=True, on_delete=models.SET_NULL,
                               related_name="decisions")
    version = models.ForeignKey("policies.PolicyVersion", null=True, blank=True, on_delete=models.SET_NULL,
                                related_name="decisions")
    version_source = models.CharField(max_length=20, choices=VersionSource.choices, default=VersionSource.UNKNOWN)
    effective_mode = models.CharField(max_length=10, blank=True, db_index=True,
                                      help_text="enforce, dry-run or off, when the entrypoint decided.")
    exception_ids = ArrayField(models.BigIntegerField(), default=list, blank=True,
                               help_text="Policy exceptions that waived denials in this decision.")
    labels = models.JSONField(default=dict, blank=True, help_text="The OPA instance's labels (id, version, ...).")
    bundles = models.JSONField(default=dict, blank=True, help_text="Bundle revisions OPA reported.")
    latency_ns = models.BigIntegerField(null=True, blank=True, help_text="OPA's query evaluation time.")
    requested_by = models.CharField(max_length=200, blank=True)
    received_at = models.DateTimeField(auto_now_add=True)
    batch = models.ForeignKey(LogBatch, null=True, blank=True, on_delete=models.SET_NULL, related_name="decisions")

    class Meta:
        ordering = ["-timestamp", "-id"]
        permissions = [("export_decision", "Can export decisions")]
        indexes = [GinIndex(fields=["exception_ids"], name="decision_exception_ids")]

    def __str__(self) -> str:
        return f"{self.decision_id} {self.outcome}"

    @property
    def subject(self) -> str:
        """Who asked, as far as the input says: `user.id`, `user`, `subject` or `requested_by`."""
        if not isinstance(self.input, dict):
            return ""
        user = self.input.get("user", self.input.get("subject", self.input.get("requested_by")))
        if isinstance(user, dict):
            user = user.get("id") or user.get("name")
        return str(user) if isinstance(user, (str, int)) else ""

    @property
    def instance_id(self) -> str:
        return self.labels.get("id", "")

    @property
    def latency_ms(self) -> float | None:
        return None if self.latency_ns is None else self.latency_ns / 1_000_000
