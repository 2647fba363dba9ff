"""Policies, their immutable versions, and each attempt to publish a version to OPA."""
from django.conf import settings
from django.db import models
from django.db.models.functions import Coalesce

from core.digest import sha256_of


class Category(models.TextChoices):
    IDENTITY = "identity", "Identity"
    RESOURCE = "resource", "Resource"
    WORKFLOW = "workflow", "Workflow"
    COMPLIANCE = "compliance", "Compliance"
    OVERRIDE = "override", "Override"


class Policy(models.Model):
    """One Rego package that Gavel manages. OPA knows it as the policy id `gavel/<name>`."""

    name = models.SlugField(max_length=100, unique=True, help_text="Short identifier, also the OPA policy id.")
    package = models.CharField(max_length=200, unique=True, help_text="The Rego package, e.g. gavel.agent_gateway.")
    title = models.CharField(max_length=200)
    description = models.TextField(blank=True)
    category = models.CharField(max_length=20, choices=Category.choices, default=Category.RESOURCE)
    team = models.CharField(max_length=100, blank=True, help_text="The team that owns the policy.")
    bundle = models.SlugField(max_length=100, blank=True, help_text="A name that groups related policies.")
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)
    # A retired policy was removed from OPA and takes no new versions or publications.
    retired_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["name"]
        verbose_name_plural = "policies"
        permissions = [("retire_policy", "Can retire a policy (remove it from OPA)"),
                       ("rollback_policy", "Can roll an environment back to its previous version")]

    def __str__(self) -> str:
        return self.name

    @property
    def opa_policy_id(self) -> str:
        return f"gavel/{self.name}"

    @property
    def data_path(self) -> str:
        """The package as a path under /v1/data and in decision logs (`gavel/agent_gateway`)."""
        return self.package.replace(".", "/")

    @property
    def latest_version(self):
        return self.versions.order_by("-number").first()

    def active_in(self, environment) -> "ActiveVersion | None":
        """What `environment` runs of this policy (its version and since when), or None."""
        return self.active_versions.filter(environment=environment).select_related("version").first()

    def active_version_in(self, environment):
        active = self.active_in(environment)
        return active.version if active else None

    @property
    def active_version(self):
        """The version the default environment (GAVEL_ENVIRONMENT) runs; see active_in for the others."""
        active = self.active_versions.filter(environment__name=settings.GAVEL_ENVIRONMENT).select_related(
            "version").first()
        return active.version if active else None


class PolicyVersion(models.Model):
    """A saved source of a policy. Never changed after it is saved (a database trigger agrees)."""

    policy = models.ForeignKey(Policy, on_delete=models.PROTECT, related_name="versions")
    number = models.PositiveIntegerField()
    source = models.TextField()
    tests = models.TextField(blank=True, default="", help_text="Rego tests (a *_test.rego module) run by `opa test`.")
    sha256 = models.CharField(max_length=64)
    author = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    message = models.CharField(max_length=500)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["policy", "-number"]
        constraints = [models.UniqueConstraint(fields=["policy", "number"], name="unique_version_number")]
        permissions = [("publish_policyversion", "Can publish a policy version to OPA")]

    def __str__(self) -> str:
        return f"{self.policy.name} v{self.number}"

    def save(self, *args, **kwargs):
        if not self._state.adding:
            raise ValueError("policy versions are immutable; save a new version instead")
        self.sha256 = sha256_of(self.source)
        super().save(*args, **kwargs)

    @property
    def active_environments(self) -> list[str]:
        """The names of the environments that run this version."""
        return list(ActiveVersion.objects.filter(version=self).order_by("environment__name")
                    .values_list("environment__name", flat=True))

    @property
    def publication_in_flight(self) -> bool:
        return self.publications.exclude(status__in=Publication.FINISHED).exists()


class PublicationQuerySet(models.QuerySet):
    def counted(self):
        """The publications whose outcome still matters: not those to a decommissioned instance,
        which no publish waits for any more."""
        return self.filter(models.Q(instance__isnull=True) | models.Q(instance__decommissioned_at__isnull=True))

    def latest_confirmed_by(self, moment):
        """Each (policy, environment)'s latest publication confirmed by `moment` (of two confirmed at
        once, the later made): what a decision made then ran, whatever came before. One step down
        the `publication_latest` index per pair, however long the history."""
        table, policies = Publication._meta.db_table, Policy._meta.db_table
        environments = self.model._meta.get_field("environment").related_model._meta.db_table
        # Environment 0 stands for none (ids start at 1), as in the index, which cannot walk an IS NULL in order.
        ids = (f"SELECT latest.id FROM {policies} AS policy CROSS JOIN (SELECT id FROM {environments} UNION ALL"
               f" SELECT 0) AS environment (id), LATERAL (SELECT id FROM {table} WHERE policy_id = policy.id"
               f" AND COALESCE(environment_id, 0) = environment.id AND status = '{Publication.Status.OK}'"
               f" AND confirmed_at <= %s ORDER BY confirmed_at DESC, id DESC LIMIT 1) AS latest")
        # The status is written out, not bound: the planner matches it to the partial index's own.
        return self.filter(pk__in=models.expressions.RawSQL(ids, [moment]))


class Publication(models.Model):
    """One request to make OPA run a version, and what came of it."""

    class Status(models.TextChoices):
        QUEUED = "queued", "Queued"
        UNREACHABLE = "unreachable", "OPA unreachable, retrying"
        OK = "ok", "Published"
        FAILED = "failed", "Failed"

    version = models.ForeignKey(PolicyVersion, on_delete=models.PROTECT, related_name="publications")
    # The version's policy, on the row so an index finds each policy's latest publication (save sets it).
    policy = models.ForeignKey(Policy, on_delete=models.PROTECT, related_name="+", editable=False)
    target_url = models.URLField(help_text="The OPA server this publication goes to.")
    # Publishing to an environment makes one publication per OPA instance, sharing a group:
    # the policy's active version moves only once every publication of the group is confirmed.
    environment = models.ForeignKey("fleet.Environment", null=True, blank=True, on_delete=models.PROTECT,
                                    related_name="publications")
    instance = models.ForeignKey("fleet.OpaInstance", null=True, blank=True, on_delete=models.PROTECT,
                                 related_name="publications")
    group = models.UUIDField(null=True, blank=True, db_index=True)
    repush = models.BooleanField(default=False, help_text="Gavel restored this version after drift.")
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.QUEUED)
    detail = models.TextField(blank=True, help_text="OPA's answer, or why the push failed.")
    attempts = models.PositiveIntegerField(default=0)
    requested_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    requested_at = models.DateTimeField(auto_now_add=True)
    last_attempt_at = models.DateTimeField(null=True, blank=True)
    confirmed_at = models.DateTimeField(null=True, blank=True)

    objects = PublicationQuerySet.as_manager()

    class Meta:
        ordering = ["-requested_at"]
        indexes = [models.Index(fields=["status", "confirmed_at"]),
                   models.Index("policy", Coalesce("environment", 0), "confirmed_at", "id", name="publication_latest",
                                condition=models.Q(status="ok"))]

    def __str__(self) -> str:
        return f"{self.version} → {self.target_url} ({self.status})"

    def save(self, *args, **kwargs):
        if self.policy_id is None:
            self.policy_id = self.version.policy_id
        super().save(*args, **kwargs)

    FINISHED = (Status.OK, Status.FAILED)

    @property
    def is_finished(self) -> bool:
        return self.status in self.FINISHED


class ActiveVersion(models.Model):
    """The version of a policy an environment runs, and since when. Moved only by a publication
    confirmed by every OPA instance of the environment (pull: by a status report naming it),
    so an interrupted publish leaves the previous version here. Retiring removes the rows;
    PublishEvent keeps the history."""

    policy = models.ForeignKey(Policy, on_delete=models.PROTECT, related_name="active_versions")
    environment = models.ForeignKey("fleet.Environment", on_delete=models.PROTECT, related_name="active_versions")
    version = models.ForeignKey(PolicyVersion, on_delete=models.PROTECT, related_name="+")
    publication = models.ForeignKey("Publication", null=True, blank=True, on_delete=models.SET_NULL,
                                    related_name="+")
    since = models.DateTimeField(help_text="When the environment started running this version.")

    class Meta:
        ordering = ["environment__name"]
        constraints = [models.UniqueConstraint(fields=["policy", "environment"], name="one_active_version_per_env")]

    def __str__(self) -> str:
        return f"{self.environment.name} runs {self.version}"


class VersionSummary(models.Model):
    """A version's plain-language summary with its worked examples, as OPA judged them when
    the version was saved. Rebuilt when the summary format changes."""

    version = models.OneToOneField(PolicyVersion, on_delete=models.CASCADE, related_name="summary")
    format = models.PositiveSmallIntegerField()
    data = models.JSONField()
    created_at = models.DateTimeField(auto_now_add=True)


class VersionTestRun(models.Model):
    """What `opa test` said about a version's tests when it was saved (versions themselves
    are immutable, so the result lives here)."""

    version = models.OneToOneField(PolicyVersion, on_delete=models.CASCADE, related_name="test_run")
    passed = models.BooleanField()
    total = models.PositiveIntegerField()
    failed = models.PositiveIntegerField()
    results = models.JSONField(help_text='[{"name", "package", "row", "status", "duration_ms"}]')
    coverage = models.FloatField(null=True, blank=True, help_text="Percent of the policy's lines covered.")
    not_covered_rows = models.JSONField(default=list, help_text="Policy lines no test reached.")
    created_at = models.DateTimeField(auto_now_add=True)


class LintWarning(models.Model):
    """A trap the lint pass found in a version's source, e.g. `default allow := true`."""

    version = models.ForeignKey(PolicyVersion, on_delete=models.CASCADE, related_name="lint_warnings")
    code = models.CharField(max_length=50)
    row = models.PositiveIntegerField()
    message = models.CharField(max_length=500)

    class Meta:
        ordering = ["row", "code"]


class PublishRequest(models.Model):
    """Someone asks for a version to be published; a second person approves or rejects it."""

    class Status(models.TextChoices):
        PENDING = "pending", "Pending approval"
        APPROVED = "approved", "Approved"
        REJECTED = "rejected", "Rejected"

    version = models.ForeignKey(PolicyVersion, on_delete=models.PROTECT, related_name="publish_requests")
    # Where the approval publishes; blank only on requests made before environments were chosen.
    environment = models.ForeignKey("fleet.Environment", null=True, blank=True, on_delete=models.PROTECT,
                                    related_name="publish_requests")
    reason = models.TextField()
    requested_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    requested_at = models.DateTimeField(auto_now_add=True)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.PENDING)
    decided_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT,
                                   related_name="+")
    decided_at = models.DateTimeField(null=True, blank=True)
    decision_note = models.TextField(blank=True)
    publication = models.OneToOneField(Publication, null=True, blank=True, on_delete=models.PROTECT,
                                       related_name="publish_request")

    class Meta:
        ordering = ["-requested_at", "-id"]
        # The pending ones are few and counted on every page (console/inbox.py).
        indexes = [models.Index(fields=["requested_at"], condition=models.Q(status="pending"),
                                name="publish_request_pending")]

    def __str__(self) -> str:
        return f"request {self.pk} to publish {self.version}"


class PublishEvent(models.Model):
    """The policy's publishing history: one row per step, with who, when and why."""

    class Action(models.TextChoices):
        REQUESTED = "requested", "Publication requested"
        APPROVED = "approved", "Publication approved"
        REJECTED = "rejected", "Publication rejected"
        PUBLISHED = "published", "Published to OPA"
        ROLLED_BACK = "rolled_back", "Rolled back"
        RETIRED = "retired", "Retired"

    policy = models.ForeignKey(Policy, on_delete=models.PROTECT, related_name="publish_events")
    version = models.ForeignKey(PolicyVersion, null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    environment = models.ForeignKey("fleet.Environment", null=True, blank=True, on_delete=models.PROTECT, related_name="+",
                                    help_text="Blank: every environment (retirement) or before environments.")
    action = models.CharField(max_length=20, choices=Action.choices)
    actor = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    reason = models.TextField(blank=True)
    request = models.ForeignKey(PublishRequest, null=True, blank=True, on_delete=models.PROTECT, related_name="events")
    publication = models.ForeignKey(Publication, null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at", "-id"]

