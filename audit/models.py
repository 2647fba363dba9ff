"""Decision-log batches as OPA delivered them, and the decisions stored from them."""
from django.conf import settings
from django.contrib.postgres.fields import ArrayField
from django.contrib.postgres.indexes import GinIndex
from django.contrib.postgres.search import SearchVector, SearchVectorField
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
    BUNDLE = "bundle", "Named by the bundle revision OPA ran"
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
    masked = ArrayField(models.CharField(max_length=300), default=list, blank=True,
                        help_text="Input fields hashed or erased before storage (path=mode).")
    approval_ref = models.CharField(max_length=100, blank=True, db_index=True,
                                    help_text="The held action whose approval allowed this retry.")
    labels = models.JSONField(default=dict, blank=True, help_text="The OPA instance's labels (id, version, ...).")
    bundles = models.JSONField(default=dict, blank=True, help_text="Bundle revisions OPA reported.")
    latency_ns = models.BigIntegerField(null=True, blank=True, help_text="OPA's query evaluation time.")
    requested_by = models.CharField(max_length=200, blank=True)
    received_at = models.DateTimeField(auto_now_add=True)
    batch = models.ForeignKey(LogBatch, null=True, blank=True, on_delete=models.SET_NULL, related_name="decisions")
    # Where it was decided, and the searchable facts read out of the (masked) input: see fields.py.
    environment = models.CharField(max_length=100, blank=True, db_index=True,
                                   help_text="The environment of the OPA instance that decided.")
    instance = models.CharField(max_length=200, blank=True, db_index=True,
                                help_text="The OPA instance: its `instance` label, else its id.")
    user = models.CharField(max_length=300, blank=True, db_index=True, help_text="Who asked, from the input.")
    agent = models.CharField(max_length=300, blank=True, db_index=True, help_text="The agent acting, from the input.")
    action = models.CharField(max_length=300, blank=True, db_index=True)
    resource = models.CharField(max_length=300, blank=True, db_index=True)
    search_text = models.TextField(blank=True, help_text="Reasons and the chosen input fields, for full-text search.")
    search = models.GeneratedField(expression=SearchVector("search_text", config="simple"),
                                   output_field=SearchVectorField(), db_persist=True)

    class Meta:
        ordering = ["-timestamp", "-id"]
        permissions = [("export_decision", "Can export decisions")]
        indexes = [
            GinIndex(fields=["exception_ids"], name="decision_exception_ids"),
            GinIndex(fields=["search"], name="decision_search"),
            GinIndex(fields=["reasons"], name="decision_reasons"),
        ]

    def __str__(self) -> str:
        return f"{self.decision_id} {self.outcome}"

    @property
    def subject(self) -> str:
        from .outcomes import requester_of

        return requester_of(self.input)

    @property
    def instance_id(self) -> str:
        return self.labels.get("id", "")

    @property
    def latency_ms(self) -> float | None:
        return None if self.latency_ns is None else self.latency_ns / 1_000_000


class HeldAction(models.Model):
    """An action a policy said needs a person's approval, held until reviewers decide.

    Created from the decision log or by the enforcement point through the API, whichever
    comes first; the decision id makes it exist once.
    """

    class Status(models.TextChoices):
        PENDING = "pending", "Waiting for review"
        APPROVED = "approved", "Approved"
        REJECTED = "rejected", "Rejected"
        EXPIRED = "expired", "Expired (rejected)"

    decision_id = models.CharField(max_length=100, unique=True)
    logged_decision = models.OneToOneField(Decision, null=True, blank=True, on_delete=models.SET_NULL,
                                           related_name="held_action", help_text="Its decision log, once in.")
    policy = models.ForeignKey("policies.Policy", null=True, blank=True, on_delete=models.SET_NULL,
                               related_name="held_actions")
    path = models.CharField(max_length=500)
    input = models.JSONField()
    reasons = ArrayField(models.TextField(), default=list, blank=True)
    requester = models.CharField(max_length=200, blank=True, help_text="Who asked, from the input.")
    risk = models.PositiveSmallIntegerField(default=1, help_text="1 (low) to 5 (high), for sorting the queue.")
    approvals_required = models.PositiveSmallIntegerField(default=1)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.PENDING, db_index=True)
    created_from = models.CharField(max_length=20, help_text="decision log or api: whichever arrived first.")
    callback_url = models.URLField(blank=True, help_text="The enforcement point's webhook for the outcome.")
    created_at = models.DateTimeField(auto_now_add=True)
    expires_at = models.DateTimeField(help_text="Undecided by then, it is rejected.")
    escalated_at = models.DateTimeField(null=True, blank=True)
    decided_at = models.DateTimeField(null=True, blank=True)
    valid_until = models.DateTimeField(null=True, blank=True, help_text="An approved retry is allowed until then.")
    consumed_at = models.DateTimeField(null=True, blank=True)
    consumed_by_decision = models.CharField(max_length=100, blank=True)

    class Meta:
        ordering = ["-risk", "created_at"]
        permissions = [("review_heldaction", "Can approve or reject held actions")]

    def __str__(self) -> str:
        return f"held action {self.decision_id} ({self.status})"

    @property
    def approvals(self) -> int:
        return sum(1 for vote in self.votes.all() if vote.approve)


class ApprovalVote(models.Model):
    held_action = models.ForeignKey(HeldAction, on_delete=models.CASCADE, related_name="votes")
    reviewer = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    approve = models.BooleanField()
    comment = models.TextField()
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["created_at"]
        constraints = [models.UniqueConstraint(fields=["held_action", "reviewer"], name="one_vote_per_reviewer")]


class HeldActionEvent(models.Model):
    """Every step of a held action, with who (when a person) and when."""

    class Kind(models.TextChoices):
        CREATED = "created", "Held"
        VOTED = "voted", "Reviewed"
        APPROVED = "approved", "Approved"
        REJECTED = "rejected", "Rejected"
        ESCALATED = "escalated", "Escalated"
        EXPIRED = "expired", "Expired"
        CONSUMED = "consumed", "Retried and allowed by OPA"

    held_action = models.ForeignKey(HeldAction, on_delete=models.CASCADE, related_name="events")
    kind = models.CharField(max_length=10, choices=Kind.choices)
    actor = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT,
                              related_name="+")
    detail = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["created_at", "id"]


class ExportRecord(models.Model):
    """One export of a decision search, and its manifest: what was asked, what the file holds.

    A job export writes its file under GAVEL_EXPORT_DIR; a streamed one keeps no file, only the
    hash and count of the bytes it sent, finalised when the last byte left (audit/exports.py).
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

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"export {self.pk} ({self.format}, {self.status})"

    @property
    def is_running(self) -> bool:
        return self.status in (self.Status.QUEUED, self.Status.RUNNING)

    @property
    def download_name(self) -> str:
        return f"gavel-decisions-{self.pk}.{self.format}"
