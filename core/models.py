"""The decision core's tables: decision-log batches as OPA delivered them, the decisions stored
from them, and their per-minute, per-hour and per-day rollups. Every feature reads decisions from here;
they are written only through core/store.py."""
from django.contrib.postgres.fields import ArrayField
from django.contrib.postgres.indexes import BrinIndex, GinIndex
from django.contrib.postgres.search import SearchVector, SearchVectorField
from django.db import models
from django.db.models import DEFERRED, Value, signals


class LogBatch(models.Model):
    """A decision-log upload from OPA, kept exactly as received until the worker stores it.

    Staging the gzip body in Postgres is what lets Gavel answer 204 safely: once this row
    commits, the batch survives any crash, and the worker can store it (again) later.
    """

    class Status(models.TextChoices):
        QUEUED = "queued", "Queued"
        STORED = "stored", "Stored"
        FAILED = "failed", "Failed"  # still unstorable after its attempts: kept, shown, retried by hand

    received_at = models.DateTimeField(auto_now_add=True, db_index=True)
    body_gz = models.BinaryField()
    event_count = models.PositiveIntegerField()
    remote_addr = models.GenericIPAddressField(null=True, blank=True)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.QUEUED)
    stored_at = models.DateTimeField(null=True, blank=True)
    stored_count = models.PositiveIntegerField(default=0)
    duplicate_count = models.PositiveIntegerField(default=0)
    attempts = models.PositiveIntegerField(default=0, help_text="Attempts that failed for a reason other than an outage.")
    failure = models.TextField(blank=True, help_text="Why the last attempt to store it failed.")
    # Where it came from, when OPA presented an instance's (or an environment's) own token;
    # null for the bootstrap GAVEL_OPA_TOKEN, whose batches are placed by their labels.
    environment = models.ForeignKey("fleet.Environment", null=True, blank=True, on_delete=models.SET_NULL,
                                    related_name="+")
    instance = models.ForeignKey("fleet.OpaInstance", null=True, blank=True, on_delete=models.SET_NULL,
                                 related_name="+")

    class Meta:
        db_table = "audit_logbatch"  # the table keeps the name the audit app gave it
        indexes = [models.Index(fields=["status", "received_at"])]
        permissions = [("retry_logbatch", "Can send a failed decision-log batch to the worker again")]


class Outcome(models.TextChoices):
    ALLOW = "allow", "Allow"
    DENY = "deny", "Deny"
    REQUIRE_APPROVAL = "require_approval", "Require approval"
    WOULD_DENY = "would_deny", "Dry-run: would deny"
    # Allowed in dry-run where enforcement would have held the request for a person's approval.
    WOULD_REQUIRE_APPROVAL = "would_need_approval", "Dry-run: would require approval"
    UNDEFINED = "undefined", "Undefined"


# The `source` label of decisions a CI check made (`gavel check`), and the instance they are filed under.
CI_SOURCE, CI_INSTANCE = "ci", "gavel-ci"

# Denials, enforced or only recorded in dry-run: what deny rates and deny-reason charts count.
DENIED_OUTCOMES = (Outcome.DENY, Outcome.WOULD_DENY)


class VersionSource(models.TextChoices):
    """How Gavel knows which policy version made a decision."""

    REPORTED = "reported", "Reported by Gavel's entrypoint"
    BUNDLE = "bundle", "Named by the bundle revision OPA ran"
    PUBLICATION = "publication", "Active publication at decision time"
    UNKNOWN = "unknown", "Unknown"


class DecisionQuerySet(models.QuerySet):
    def bulk_create(self, objs, *args, **kwargs):
        raise TypeError("decisions are written through core.store.insert (partitions, rollups, each once)")

    def for_rows(self):
        """Decisions as a list shows them (time, outcome, policy and version, path, who, reasons),
        without the documents: an input can run to megabytes, and a page of 50 reads none of them.
        Nor the texts of the policy and version beside each row: each row carried its version's
        whole Rego source and tests (about 1 ms of a page at 10M rows with the demo's short policies)."""
        return self.select_related("policy", "version").defer(
            "input", "result", "labels", "bundles", "masked", "exception_ids", "search_text", "search",
            "policy__description", "version__source", "version__tests", "version__message")


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
    # The batch it came in; stored batches are deleted after a day (audit/ingest/staged.py), the id stays.
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
        db_table = "audit_decision"  # the table keeps the name the audit app gave it
        ordering = ["-timestamp", "-id"]
        permissions = [("export_decision", "Can export decisions")]
        constraints = [
            # OPA re-sends a batch it got no 2xx for: same id, same timestamp, same environment.
            models.UniqueConstraint(fields=["decision_id", "environment", "timestamp"], name="decision_once"),
        ]
        # Each filter paired with the page order (newest first, then id), so a page reads an index in order.
        # Each also carries the outcome, the filter most often added to another: the page's capped count of
        # "this agent's denials" then reads the index alone (10M rows: 100 ms reading the rows, 10 ms without).
        # A decision id is found through decision_once's index, which leads with it (ingest's duplicate
        # check and the search by id): a second index on the id alone cost every insert and served nothing.
        indexes = [
            models.Index(fields=["timestamp", "id"], name="decision_time"),
            models.Index(fields=["outcome", "timestamp", "id"], name="decision_outcome_time"),
            models.Index(fields=["policy", "timestamp", "id"], name="decision_policy_time", include=["outcome"]),
            models.Index(fields=["version", "timestamp", "id"], name="decision_version_time", include=["outcome"]),
            models.Index(fields=["effective_mode", "timestamp", "id"], name="decision_mode_time", include=["outcome"]),
            models.Index(fields=["instance", "timestamp", "id"], name="decision_instance_time", include=["outcome"]),
            models.Index(fields=["user", "timestamp", "id"], name="decision_user_time", include=["outcome"]),
            models.Index(fields=["agent", "timestamp", "id"], name="decision_agent_time", include=["outcome"]),
            models.Index(fields=["action", "timestamp", "id"], name="decision_action_time", include=["outcome"]),
            models.Index(fields=["resource", "timestamp", "id"], name="decision_resource_time", include=["outcome"]),
            models.Index(fields=["path"], name="decision_path_prefix", opclasses=["varchar_pattern_ops"]),
            models.Index(fields=["approval_ref"], name="decision_approval_ref", condition=~models.Q(approval_ref="")),
            GinIndex(fields=["exception_ids"], name="decision_exception_ids"),
            GinIndex(fields=["search"], name="decision_search"),
            GinIndex(fields=["reasons"], name="decision_reasons"),
        ]

    @classmethod
    def new(cls, *, policy, **values) -> "Decision":
        """A decision to store, from the value of every stored field (`policy` the object or None).
        Ingest builds one per decision: the keyword constructor (a descriptor and a default per
        field) took twice as long as the positional one, and filling the attributes is quicker still."""
        # `search` is left unset, as the keyword constructor leaves a generated field: Postgres computes it.
        values.update(id=None, policy_id=policy.pk if policy else None, received_at=None, search=DEFERRED)
        try:
            ordered = [values.pop(name) for name in _STORED_ATTNAMES]
        except KeyError as missing:
            raise TypeError(f"a decision needs a value for {missing}") from None
        if values:
            raise TypeError(f"not fields of a decision: {', '.join(sorted(values))}")
        if signals.pre_init.has_listeners(cls) or signals.post_init.has_listeners(cls):
            decision = cls(*ordered)
        else:
            # What the constructor does when given every value, without its per-field loop and its
            # signals, which nobody hears (docs/performance.md, "Ingest in one process").
            decision = cls.__new__(cls)
            decision._state = models.base.ModelState()
            decision.__dict__.update(zip(_STORED_ATTNAMES, ordered))
            del decision.__dict__["search"]  # DEFERRED: the constructor leaves it unset too
        if policy is not None:
            cls.policy.field.set_cached_value(decision, policy)  # approvals reads it for held actions
        return decision

    def save(self, *args, **kwargs):
        if self._state.adding:
            raise TypeError("decisions are written through core.store.insert (partitions, rollups, each once)")
        super().save(*args, **kwargs)

    def __str__(self) -> str:
        return f"{self.decision_id} {self.outcome}"

    @property
    def subject(self) -> str:
        """Who asked: the `user` fact, read from the stored input like every other fact (core/facts.py)."""
        return self.user

    @property
    def instance_id(self) -> str:
        return self.labels.get("id", "")

    @property
    def from_ci(self) -> bool:
        """A CI check made it (`gavel check`, checks/), not an OPA server: labels say source=ci."""
        return isinstance(self.labels, dict) and self.labels.get("source") == CI_SOURCE

    @property
    def latency_ms(self) -> float | None:
        return None if self.latency_ns is None else self.latency_ns / 1_000_000


_STORED_ATTNAMES = [field.attname for field in Decision._meta.concrete_fields]


class StoredDecisionId(models.Model):
    """Each decision id stored, with the environment and time of its row: what ingest's duplicate
    check reads. The decisions table cannot hold an id unique across its partitions (environment,
    then week), and asking every partition's index for every new decision cost more than storing it."""

    decision_id = models.CharField(max_length=100, primary_key=True)
    environment = models.CharField(max_length=100, blank=True)
    timestamp = models.DateTimeField()

    class Meta:
        db_table = "audit_decision_id"
        indexes = [BrinIndex(fields=["timestamp"], name="decision_id_time")]  # retention drops by week

    def __str__(self) -> str:
        return self.decision_id


class RollupDimensions(models.Model):
    """What every rollup is counted by: the filters the charts can answer from rollups.

    Each decision is counted three times: in its minute (for charts of a few hours), its hour
    (for charts of a few days) and its UTC day (for weeks and months, whose hourly latency
    histograms alone run to a million rows at ten million decisions).
    """

    class Granularity(models.IntegerChoices):
        MINUTE = 1, "Minute"
        HOUR = 60, "Hour"
        DAY = 1440, "Day"

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
    """Decisions per minute, hour and day, with their latency histogram. Written in the transaction
    that stores them."""

    # {bucket: decisions}; bucket b holds evaluation times near 2^(b/8) ns (rollups.latency_bucket).
    # In the row, not a row per bucket: ingest upserts one row a key, not one a key and bucket.
    latency = models.JSONField(default=dict, db_default=Value({}, output_field=models.JSONField()),
                               help_text="Latency histogram: {bucket: decisions} of the timed ones.")

    class Meta:
        db_table = "audit_decisionrollup"  # the table keeps the name the audit app gave it
        constraints = [models.UniqueConstraint(fields=RollupDimensions.DIMENSIONS, nulls_distinct=False,
                                               name="decision_rollup_key")]


class ReasonRollup(RollupDimensions):
    """Decisions per period and reason (a decision with three reasons counts once under each)."""

    reason = models.TextField()

    class Meta:
        db_table = "audit_reasonrollup"  # the table keeps the name the audit app gave it
        constraints = [models.UniqueConstraint(fields=[*RollupDimensions.DIMENSIONS, "reason"], nulls_distinct=False,
                                               name="reason_rollup_key")]

