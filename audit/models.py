"""Decision-log batches as OPA delivered them, and the decisions stored from them."""
from django.conf import settings
from django.contrib.postgres.fields import ArrayField
from django.contrib.postgres.indexes import GinIndex
from django.contrib.postgres.search import SearchVector, SearchVectorField
from django.db import models, transaction

from . import partitions


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
    # Where it came from, when OPA presented an instance's (or an environment's) own token;
    # null for the bootstrap GAVEL_OPA_TOKEN, whose batches are placed by their labels.
    environment = models.ForeignKey("policies.Environment", null=True, blank=True, on_delete=models.SET_NULL,
                                    related_name="+")
    instance = models.ForeignKey("policies.OpaInstance", null=True, blank=True, on_delete=models.SET_NULL,
                                 related_name="+")

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


class DecisionQuerySet(models.QuerySet):
    def bulk_create(self, objs, *args, **kwargs):
        """Like Django's, plus partitions and rollups (ingest uses ingest.insert_new instead)."""
        from . import rollups

        if kwargs.get("ignore_conflicts") or kwargs.get("update_conflicts"):
            raise ValueError("decisions are stored once: use audit.ingest.insert_new to skip known ones")
        objs = list(objs)
        partitions.ensure((d.environment, d.timestamp) for d in objs)
        with transaction.atomic():
            created = super().bulk_create(objs, *args, **kwargs)
            rollups.add(created)
        return created


class Decision(models.Model):
    """One decision OPA made, as its decision log reported it. Never changed once stored.

    The table is partitioned by environment and week (see partitions.py): the primary key
    and the uniqueness of `decision_id` include both, and nothing references a decision
    with a database constraint, so whole weeks can be dropped when their retention ends.
    """

    decision_id = models.CharField(max_length=100)
    timestamp = models.DateTimeField()
    path = models.CharField(max_length=500)
    input = models.JSONField(null=True, blank=True)
    result = models.JSONField(null=True, blank=True)
    outcome = models.CharField(max_length=20, choices=Outcome.choices)
    reasons = ArrayField(models.TextField(), default=list, blank=True)
    policy = models.ForeignKey("policies.Policy", null=True, blank=True, on_delete=models.DO_NOTHING,
                               db_constraint=False, related_name="decisions")
    version = models.ForeignKey("policies.PolicyVersion", null=True, blank=True, on_delete=models.DO_NOTHING,
                                db_constraint=False, related_name="decisions")
    version_source = models.CharField(max_length=20, choices=VersionSource.choices, default=VersionSource.UNKNOWN)
    effective_mode = models.CharField(max_length=10, blank=True,
                                      help_text="enforce, dry-run or off, when the entrypoint decided.")
    exception_ids = ArrayField(models.BigIntegerField(), default=list, blank=True,
                               help_text="Policy exceptions that waived denials in this decision.")
    masked = ArrayField(models.CharField(max_length=300), default=list, blank=True,
                        help_text="Input fields hashed or erased before storage (path=mode).")
    approval_ref = models.CharField(max_length=100, blank=True,
                                    help_text="The held action whose approval allowed this retry.")
    labels = models.JSONField(default=dict, blank=True, help_text="The OPA instance's labels (id, version, ...).")
    bundles = models.JSONField(default=dict, blank=True, help_text="Bundle revisions OPA reported.")
    latency_ns = models.BigIntegerField(null=True, blank=True, help_text="OPA's query evaluation time.")
    requested_by = models.CharField(max_length=200, blank=True)
    received_at = models.DateTimeField(auto_now_add=True)
    batch = models.ForeignKey(LogBatch, null=True, blank=True, on_delete=models.DO_NOTHING, db_constraint=False,
                              related_name="decisions")
    # Where it was decided, and the searchable facts read out of the (masked) input: see fields.py.
    environment = models.CharField(max_length=100, blank=True,
                                   help_text="The environment of the OPA instance that decided.")
    instance = models.CharField(max_length=200, blank=True,
                                help_text="The OPA instance: its `instance` label, else its id.")
    user = models.CharField(max_length=300, blank=True, help_text="Who asked, from the input.")
    agent = models.CharField(max_length=300, blank=True, help_text="The agent acting, from the input.")
    action = models.CharField(max_length=300, blank=True)
    resource = models.CharField(max_length=300, blank=True)
    search_text = models.TextField(blank=True, help_text="Reasons and the chosen input fields, for full-text search.")
    search = models.GeneratedField(expression=SearchVector("search_text", config="simple"),
                                   output_field=SearchVectorField(), db_persist=True)

    objects = DecisionQuerySet.as_manager()

    class Meta:
        ordering = ["-timestamp", "-id"]
        permissions = [("export_decision", "Can export decisions")]
        constraints = [
            # OPA re-sends a batch it got no 2xx for: same id, same timestamp, same environment.
            models.UniqueConstraint(fields=["decision_id", "environment", "timestamp"], name="decision_once"),
        ]
        # Each filter paired with the page order (newest first, then id), so a page reads an index in order.
        indexes = [
            models.Index(fields=["timestamp", "id"], name="decision_time"),
            models.Index(fields=["decision_id"], name="decision_id_lookup"),
            models.Index(fields=["outcome", "timestamp", "id"], name="decision_outcome_time"),
            models.Index(fields=["policy", "timestamp", "id"], name="decision_policy_time"),
            models.Index(fields=["version", "timestamp", "id"], name="decision_version_time"),
            models.Index(fields=["effective_mode", "timestamp", "id"], name="decision_mode_time"),
            models.Index(fields=["instance", "timestamp", "id"], name="decision_instance_time"),
            models.Index(fields=["user", "timestamp", "id"], name="decision_user_time"),
            models.Index(fields=["agent", "timestamp", "id"], name="decision_agent_time"),
            models.Index(fields=["action", "timestamp", "id"], name="decision_action_time"),
            models.Index(fields=["resource", "timestamp", "id"], name="decision_resource_time"),
            models.Index(fields=["path"], name="decision_path_prefix", opclasses=["varchar_pattern_ops"]),
            models.Index(fields=["approval_ref"], name="decision_approval_ref", condition=~models.Q(approval_ref="")),
            GinIndex(fields=["exception_ids"], name="decision_exception_ids"),
            GinIndex(fields=["search"], name="decision_search"),
            GinIndex(fields=["reasons"], name="decision_reasons"),
        ]

    def save(self, *args, **kwargs):
        """Store a decision one at a time (ingest stores in bulk: ingest.insert_new)."""
        from . import rollups

        adding = self._state.adding
        if adding:
            partitions.ensure([(self.environment, self.timestamp)])
        with transaction.atomic():
            super().save(*args, **kwargs)
            if adding:
                rollups.add([self])

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
                                           db_constraint=False,
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


class RollupDimensions(models.Model):
    """What every rollup is counted by: the filters the charts can answer from rollups.

    Each decision is counted twice: in its minute (for charts of a few hours) and in its hour
    (for charts of days and months, which would otherwise sum millions of minute rows).
    """

    class Granularity(models.IntegerChoices):
        MINUTE = 1, "Minute"
        HOUR = 60, "Hour"

    period = models.DateTimeField(help_text="Start of the minute or hour counted.")
    granularity = models.PositiveSmallIntegerField(choices=Granularity.choices)
    environment = models.CharField(max_length=100, blank=True)
    policy = models.ForeignKey("policies.Policy", null=True, on_delete=models.DO_NOTHING, db_constraint=False,
                               related_name="+")
    version = models.ForeignKey("policies.PolicyVersion", null=True, on_delete=models.DO_NOTHING,
                                db_constraint=False, related_name="+")
    outcome = models.CharField(max_length=20, choices=Outcome.choices)
    effective_mode = models.CharField(max_length=10, blank=True)
    decisions = models.BigIntegerField()

    DIMENSIONS = ["granularity", "period", "environment", "policy", "version", "outcome", "effective_mode"]

    class Meta:
        abstract = True


class DecisionRollup(RollupDimensions):
    """Decisions per minute and per hour. Written in the transaction that stores them."""

    class Meta:
        constraints = [models.UniqueConstraint(fields=RollupDimensions.DIMENSIONS, nulls_distinct=False,
                                               name="decision_rollup_key")]


class ReasonRollup(RollupDimensions):
    """Decisions per period and reason (a decision with three reasons counts once under each)."""

    reason = models.TextField()

    class Meta:
        constraints = [models.UniqueConstraint(fields=[*RollupDimensions.DIMENSIONS, "reason"], nulls_distinct=False,
                                               name="reason_rollup_key")]


class LatencyRollup(RollupDimensions):
    """Decisions per period and latency bucket; bucket b holds evaluation times near 2^(b/8) ns."""

    latency_bucket = models.SmallIntegerField()

    class Meta:
        constraints = [models.UniqueConstraint(fields=[*RollupDimensions.DIMENSIONS, "latency_bucket"], nulls_distinct=False,
                                               name="latency_rollup_key")]


class AlertRule(models.Model):
    """A condition on recent decisions that should reach a person: deny rate or p95 latency too high."""

    class Metric(models.TextChoices):
        DENY_RATE = "deny_rate", "Deny rate (%)"
        P95_LATENCY = "p95_latency", "p95 evaluation latency (ms)"

    name = models.CharField(max_length=200)
    metric = models.CharField(max_length=20, choices=Metric.choices)
    threshold = models.FloatField(help_text="Fires when the value goes above this: percent, or milliseconds.")
    window_minutes = models.PositiveSmallIntegerField(default=5, help_text="Measured over the last N whole minutes.")
    min_decisions = models.PositiveIntegerField(
        default=20, help_text="Below this many decisions in the window the rule stays quiet: too few to judge.")
    environment = models.CharField(max_length=100, blank=True, help_text="Blank: every environment.")
    policy = models.ForeignKey("policies.Policy", null=True, blank=True, on_delete=models.CASCADE,
                               related_name="alert_rules", help_text="Blank: every policy.")
    enabled = models.BooleanField(default=True)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    @property
    def unit(self) -> str:
        return "%" if self.metric == self.Metric.DENY_RATE else " ms"


class Alert(models.Model):
    """One stretch of time a rule's condition held: opened when it went above, closed when it came back."""

    rule = models.ForeignKey(AlertRule, on_delete=models.CASCADE, related_name="alerts")
    opened_at = models.DateTimeField()
    opened_value = models.FloatField()
    peak_value = models.FloatField()
    last_value = models.FloatField()
    decisions = models.PositiveIntegerField(help_text="Decisions in the window when it opened.")
    closed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-opened_at"]
        constraints = [models.UniqueConstraint(fields=["rule"], condition=models.Q(closed_at__isnull=True),
                                               name="one_open_alert_per_rule")]

    def __str__(self) -> str:
        return f"{self.rule.name} since {self.opened_at:%Y-%m-%d %H:%M}"

    @property
    def is_open(self) -> bool:
        return self.closed_at is None


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
    # The file goes (it holds decision inputs: personal data); the record and its hash stay, so a copy
    # kept elsewhere can still be verified against them (audit/export_retention.py).
    expired_at = models.DateTimeField(null=True, blank=True, help_text="When the job's file was deleted.")
    expired_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT,
                                   related_name="+", help_text="Who deleted the file early; empty: retention did.")

    class Meta:
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
