"""Policies, their immutable versions, and each attempt to publish a version to OPA."""
import hashlib

from django.conf import settings
from django.contrib.postgres.fields import ArrayField
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.utils import timezone


def sha256_of(source: str) -> str:
    return hashlib.sha256(source.encode("utf-8")).hexdigest()


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
        permissions = [("retire_policy", "Can retire a policy (remove it from OPA)")]

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


class Publication(models.Model):
    """One request to make OPA run a version, and what came of it."""

    class Status(models.TextChoices):
        QUEUED = "queued", "Queued"
        UNREACHABLE = "unreachable", "OPA unreachable, retrying"
        OK = "ok", "Published"
        FAILED = "failed", "Failed"

    version = models.ForeignKey(PolicyVersion, on_delete=models.PROTECT, related_name="publications")
    target_url = models.URLField(help_text="The OPA server this publication goes to.")
    # Publishing to an environment makes one publication per OPA instance, sharing a group:
    # the policy's active version moves only once every publication of the group is confirmed.
    environment = models.ForeignKey("Environment", null=True, blank=True, on_delete=models.PROTECT,
                                    related_name="publications")
    instance = models.ForeignKey("OpaInstance", null=True, blank=True, on_delete=models.PROTECT,
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
        indexes = [models.Index(fields=["status", "confirmed_at"])]

    def __str__(self) -> str:
        return f"{self.version} → {self.target_url} ({self.status})"

    FINISHED = (Status.OK, Status.FAILED)

    @property
    def is_finished(self) -> bool:
        return self.status in self.FINISHED


# --- Rollout: environments, canary settings, kill switch, exceptions --------------------


class Environment(models.Model):
    """Where policies run (dev, staging, prod). Each environment's OPA gets its own runtime
    configuration: its kill switch, each policy's canary settings and active exceptions."""

    class Delivery(models.TextChoices):
        PUSH = "push", "Push (OPA's policy REST API)"
        PULL = "pull", "Pull (OPA downloads bundles from Gavel)"

    name = models.SlugField(max_length=50, unique=True)
    opa_url = models.URLField(blank=True, help_text="Blank: the OPA_URL setting.")
    # OPA refuses REST writes under paths a bundle owns, so an environment is one or the other.
    delivery = models.CharField(max_length=10, choices=Delivery.choices, default=Delivery.PUSH)
    # SHA-256 of the bearer token OPA presents to fetch bundles and report status.
    bundle_token_hash = models.CharField(max_length=64, blank=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    @property
    def target_url(self) -> str:
        return self.opa_url or settings.OPA_URL

    @property
    def is_pull(self) -> bool:
        return self.delivery == self.Delivery.PULL

    def targets(self) -> list["OpaInstance"]:
        """The OPA instances Gavel pushes to: those in service. An environment that never had
        instances is one (unsaved) instance at its target_url, as before instances existed; one
        whose instances were all decommissioned has none (publishing there is refused)."""
        instances = list(self.instances.all())  # filtered here, so a prefetch of `instances` serves it
        if not instances:
            return [OpaInstance(environment=self, name="default", url=self.target_url)]
        return [instance for instance in instances if instance.decommissioned_at is None]

    def decommissioned_instances(self) -> list["OpaInstance"]:
        return [instance for instance in self.instances.all() if instance.decommissioned_at is not None]

    def set_bundle_token(self, token: str) -> None:
        self.bundle_token_hash = sha256_of(token)
        self.save(update_fields=["bundle_token_hash"])

    def bundle_token_matches(self, token: str) -> bool:
        import hmac

        return bool(self.bundle_token_hash) and hmac.compare_digest(self.bundle_token_hash, sha256_of(token))

    @property
    def kill_switch_engaged(self) -> bool:
        latest = self.kill_switch_changes.first()
        return bool(latest and latest.engaged)


class GavelTokenState(models.TextChoices):
    UNMANAGED = "", "Not managed (OPA does not run Gavel's authorization policy)"
    ACTIVE = "active", "Active"
    ADDING = "adding", "Rotating: OPA is learning the new token"
    REMOVING = "removing", "Rotating: switched, OPA is forgetting the old token"


class OpaInstanceQuerySet(models.QuerySet):
    def active(self):
        """Instances in service: Gavel pushes to them and waits for them."""
        return self.filter(decommissioned_at__isnull=True)

    def decommissioned(self):
        return self.filter(decommissioned_at__isnull=False)


class OpaInstance(models.Model):
    """One OPA server of an environment. Push environments need its URL; in pull environments
    instances report their status to Gavel (and register themselves by their `instance` label).

    A server taken out of service is decommissioned (policies/instances.py), never deleted: its
    publications, drift alerts and decisions keep pointing at it."""

    environment = models.ForeignKey(Environment, on_delete=models.PROTECT, related_name="instances")
    name = models.SlugField(max_length=100, help_text="Matches the OPA's `instance` label (else its id).")
    url = models.URLField(blank=True, help_text="Where Gavel reaches its REST API (push delivery).")
    # The bearer token Gavel sends to this OPA. Write-only: never shown after it is set.
    token = models.CharField(max_length=500, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    # From OPA's status reports (POST /api/v1/opa/status).
    last_status_at = models.DateTimeField(null=True, blank=True)
    healthy = models.BooleanField(null=True)
    active_revision = models.CharField(max_length=2000, blank=True)
    status_detail = models.TextField(blank=True)
    # Rolling Gavel's token to this OPA (opa_authz.py): OPA accepts the tokens whose SHA-256 is in
    # the data.system.gavel_tokens it downloads from Gavel; a new one is added there before Gavel
    # switches, the old one removed after. `other_token` is the token being added (adding) or
    # removed (removing). Write-only too.
    token_state = models.CharField(max_length=10, choices=GavelTokenState.choices, default=GavelTokenState.UNMANAGED,
                                   blank=True)
    other_token = models.CharField(max_length=500, blank=True)
    token_issued_at = models.DateTimeField(null=True, blank=True)
    token_detail = models.TextField(blank=True, help_text="Why the last rotation step failed.")
    # Out of service: no pushes, no drift checks, its tokens revoked; kept for its history.
    decommissioned_at = models.DateTimeField(null=True, blank=True)
    decommissioned_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT,
                                          related_name="+")

    objects = OpaInstanceQuerySet.as_manager()

    class Meta:
        ordering = ["environment", "name"]
        constraints = [models.UniqueConstraint(fields=["environment", "name"], name="unique_instance_name")]
        permissions = [("manage_opa_credentials", "Can issue, rotate and revoke OPA instance tokens")]

    def __str__(self) -> str:
        return f"{self.environment.name}/{self.name}"

    def client(self):
        from .opa import opa_client

        return opa_client(self.url or self.environment.target_url, token=self.token or None)


class OpaCredentialQuerySet(models.QuerySet):
    def usable(self, now=None):
        now = now or timezone.now()
        return self.filter(revoked_at__isnull=True).filter(models.Q(expires_at__isnull=True) | models.Q(expires_at__gt=now))


class OpaCredential(models.Model):
    """A bearer token one OPA instance presents to Gavel (decision logs, status, bundle).

    Gavel keeps only its SHA-256 and shows the token once, when it is issued. Issuing a new one
    for an instance starts a rotation: the old one keeps working until the new one is first used
    or GAVEL_OPA_TOKEN_GRACE_HOURS pass, whichever comes first (opa_credentials.py).
    """

    class State(models.TextChoices):
        UNUSED = "unused", "Issued, not used yet"
        ACTIVE = "active", "Active"
        RETIRING = "retiring", "Replaced, still valid until its grace period ends"
        EXPIRED = "expired", "Replaced"
        REVOKED = "revoked", "Revoked"

    instance = models.ForeignKey(OpaInstance, on_delete=models.CASCADE, related_name="credentials")
    token_hash = models.CharField(max_length=64, unique=True)
    created_at = models.DateTimeField(auto_now_add=True)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT,
                                   related_name="+")
    last_used_at = models.DateTimeField(null=True, blank=True)
    expires_at = models.DateTimeField(null=True, blank=True, help_text="Set when a newer token replaces it.")
    replaced_by = models.ForeignKey("self", null=True, blank=True, on_delete=models.SET_NULL, related_name="replaces")
    revoked_at = models.DateTimeField(null=True, blank=True)
    revoked_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT,
                                   related_name="+")

    objects = OpaCredentialQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"token {self.pk} of {self.instance}"

    def usable(self, now=None) -> bool:
        now = now or timezone.now()
        return self.revoked_at is None and (self.expires_at is None or self.expires_at > now)

    @property
    def state(self) -> str:
        if self.revoked_at:
            return self.State.REVOKED
        if self.expires_at:
            return self.State.RETIRING if self.expires_at > timezone.now() else self.State.EXPIRED
        return self.State.ACTIVE if self.last_used_at else self.State.UNUSED

    def get_state_display(self) -> str:
        return self.State(self.state).label


class ActiveVersion(models.Model):
    """The version of a policy an environment runs, and since when. Moved only by a publication
    confirmed by every OPA instance of the environment (pull: by a status report naming it),
    so an interrupted publish leaves the previous version here. Retiring removes the rows;
    PublishEvent keeps the history."""

    policy = models.ForeignKey(Policy, on_delete=models.PROTECT, related_name="active_versions")
    environment = models.ForeignKey(Environment, on_delete=models.PROTECT, related_name="active_versions")
    version = models.ForeignKey(PolicyVersion, on_delete=models.PROTECT, related_name="+")
    publication = models.ForeignKey("Publication", null=True, blank=True, on_delete=models.SET_NULL,
                                    related_name="+")
    since = models.DateTimeField(help_text="When the environment started running this version.")

    class Meta:
        ordering = ["environment__name"]
        constraints = [models.UniqueConstraint(fields=["policy", "environment"], name="one_active_version_per_env")]

    def __str__(self) -> str:
        return f"{self.environment.name} runs {self.version}"


class DriftAlert(models.Model):
    """An OPA instance found running something other than what Gavel published to it."""

    environment = models.ForeignKey(Environment, on_delete=models.PROTECT, related_name="drift_alerts")
    instance = models.ForeignKey(OpaInstance, null=True, blank=True, on_delete=models.PROTECT,
                                 related_name="drift_alerts")
    target_url = models.URLField()
    policy = models.ForeignKey(Policy, on_delete=models.PROTECT, related_name="drift_alerts")
    resource = models.CharField(max_length=300, help_text="The OPA policy id that drifted.")
    expected_hash = models.CharField(max_length=64)
    actual_hash = models.CharField(max_length=64, blank=True, help_text="Blank: OPA does not have it at all.")
    detected_at = models.DateTimeField(auto_now_add=True)
    resolved_at = models.DateTimeField(null=True, blank=True)
    escalated = models.BooleanField(default=False, help_text="Drifted too often: a person must look.")
    repush = models.ForeignKey(Publication, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")

    class Meta:
        ordering = ["-detected_at", "-id"]
        indexes = [models.Index(fields=["target_url", "resource", "-detected_at"])]

    def __str__(self) -> str:
        return f"drift of {self.resource} at {self.target_url}"


class Mode(models.TextChoices):
    OFF = "off", "Off"
    DRY_RUN = "dry-run", "Dry-run"
    ENFORCE = "enforce", "Enforce"


class CanarySetting(models.Model):
    """One saved state of a policy's rollout in an environment. Rows are never changed:
    the newest is in force and the older ones are its history."""

    policy = models.ForeignKey(Policy, on_delete=models.PROTECT, related_name="canary_settings")
    environment = models.ForeignKey(Environment, on_delete=models.PROTECT, related_name="canary_settings")
    mode = models.CharField(max_length=10, choices=Mode.choices, default=Mode.ENFORCE,
                            help_text="The mode of everyone not singled out below.")
    enforce_percentage = models.PositiveSmallIntegerField(
        default=0, validators=[MinValueValidator(0), MaxValueValidator(100)],
        help_text="Share of users, by a stable hash of their id, who are enforced.",
    )
    enforce_users = ArrayField(models.CharField(max_length=200), default=list, blank=True)
    enforce_agents = ArrayField(models.CharField(max_length=200), default=list, blank=True)
    dry_run_users = ArrayField(models.CharField(max_length=200), default=list, blank=True)
    user_field = models.CharField(max_length=200, default="user.id", help_text="Input path of the user id.")
    agent_field = models.CharField(max_length=200, default="agent.id", help_text="Input path of the agent id.")
    changed_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    reason = models.CharField(max_length=500)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["policy", "environment", "-created_at"])]


class KillSwitchChange(models.Model):
    """Engaging the kill switch puts every policy of the environment in dry-run at once."""

    environment = models.ForeignKey(Environment, on_delete=models.PROTECT, related_name="kill_switch_changes")
    engaged = models.BooleanField()
    changed_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    reason = models.CharField(max_length=500)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at", "-id"]


class PolicyExceptionQuerySet(models.QuerySet):
    def approved(self):
        return self.filter(approved_by__isnull=False, revoked_at__isnull=True)

    def active(self, now=None):
        return self.approved().filter(expires_at__gt=now or timezone.now())

    def pending(self):
        return self.filter(approved_by__isnull=True, revoked_at__isnull=True, expires_at__gt=timezone.now())

    def expiring_within(self, delta):
        now = timezone.now()
        return self.active(now).filter(expires_at__lte=now + delta)

    def expired(self):
        return self.filter(expires_at__lte=timezone.now())


class PolicyException(models.Model):
    """A time-boxed waiver: denials of `policy` for requests matching `match` are let through,
    once a security admin other than the requester approves, until `expires_at`."""

    class Status(models.TextChoices):
        PENDING = "pending", "Pending approval"
        ACTIVE = "active", "Active"
        EXPIRED = "expired", "Expired"
        REVOKED = "revoked", "Revoked"

    policy = models.ForeignKey(Policy, on_delete=models.PROTECT, related_name="exceptions")
    environment = models.ForeignKey(Environment, on_delete=models.PROTECT, related_name="exceptions")
    reason_contains = models.CharField(
        max_length=300, blank=True,
        help_text="Only denials whose reason contains this text (a rule's message). Blank: every denial.",
    )
    match = models.JSONField(help_text='Input fields the request must have, e.g. [{"field": "user.id", "value": "u-1"}].')
    justification = models.TextField()
    ticket = models.CharField(max_length=100)
    requested_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    approved_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT,
                                    related_name="+")
    approved_at = models.DateTimeField(null=True, blank=True)
    expires_at = models.DateTimeField()
    revoked_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    objects = PolicyExceptionQuerySet.as_manager()

    class Meta:
        ordering = ["expires_at"]
        permissions = [("approve_policyexception", "Can approve a policy exception")]

    def __str__(self) -> str:
        return f"exception {self.pk} on {self.policy}"

    @property
    def status(self) -> str:
        if self.revoked_at:
            return self.Status.REVOKED
        if self.expires_at <= timezone.now():
            return self.Status.EXPIRED
        return self.Status.ACTIVE if self.approved_by_id else self.Status.PENDING

    def get_status_display(self) -> str:
        return self.Status(self.status).label


class VersionSummary(models.Model):
    """A version's plain-language summary with its worked examples, as OPA judged them when
    the version was saved. Rebuilt when the summary format changes."""

    version = models.OneToOneField(PolicyVersion, on_delete=models.CASCADE, related_name="summary")
    format = models.PositiveSmallIntegerField()
    data = models.JSONField()
    created_at = models.DateTimeField(auto_now_add=True)


# --- Review: tests, lint, two-person publishing -----------------------------------------


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
    environment = models.ForeignKey(Environment, null=True, blank=True, on_delete=models.PROTECT,
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
    environment = models.ForeignKey(Environment, null=True, blank=True, on_delete=models.PROTECT, related_name="+",
                                    help_text="Blank: every environment (retirement) or before environments.")
    action = models.CharField(max_length=20, choices=Action.choices)
    actor = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    reason = models.TextField(blank=True)
    request = models.ForeignKey(PublishRequest, null=True, blank=True, on_delete=models.PROTECT, related_name="events")
    publication = models.ForeignKey(Publication, null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at", "-id"]
