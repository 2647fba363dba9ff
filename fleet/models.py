"""The fleet: environments, their OPA instances, the tokens between OPA and Gavel, and drift."""
import hmac

from django.conf import settings
from django.db import models
from django.utils import timezone

from core import queue
from core.digest import sha256_of
from core.opa.client import opa_client


class EnvironmentQuerySet(models.QuerySet):
    def default(self) -> "Environment":
        """The environment of the configured OPA_URL (GAVEL_ENVIRONMENT), made on first use."""
        environment, _ = self.get_or_create(name=settings.GAVEL_ENVIRONMENT)
        return environment


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

    class BundleStore(models.TextChoices):
        GAVEL = "gavel", "Gavel's bundle service"
        OBJECT_STORAGE = "object_storage", "Object storage (an S3-compatible bucket)"

    # Where a pull environment's OPAs download its bundle (fleet/delivery/storage.py); push ignores it.
    bundle_store = models.CharField(max_length=20, choices=BundleStore.choices, default=BundleStore.GAVEL)
    # What was last written to the bucket: the bundle's SHA-256, its revision, when; or why it failed.
    published_etag = models.CharField(max_length=64, blank=True)
    published_revision = models.TextField(blank=True)
    published_at = models.DateTimeField(null=True, blank=True)
    publish_detail = models.TextField(blank=True)

    objects = EnvironmentQuerySet.as_manager()

    class Meta:
        db_table = "policies_environment"  # the table keeps the name the policies app gave it
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    @property
    def target_url(self) -> str:
        return self.opa_url or settings.OPA_URL

    def stored_as(self) -> list[str]:
        """The `environment` values its decisions are stored under: its name, and for the default
        environment also "" (OPA's logs sent with the bootstrap token and no environment label
        come from the OPA_URL's OPA, the default environment's)."""
        return [self.name, ""] if self.name == settings.GAVEL_ENVIRONMENT else [self.name]

    @property
    def is_pull(self) -> bool:
        return self.delivery == self.Delivery.PULL

    @property
    def in_object_storage(self) -> bool:
        return self.is_pull and self.bundle_store == self.BundleStore.OBJECT_STORAGE

    def bundle_changed(self) -> None:
        """Whatever may change the bundle calls this: an object-storage environment's bundle is
        written to the bucket again once the change commits (fleet.tasks.publish_bundle; the
        bundle service builds it on each download and needs nothing)."""
        if self.in_object_storage:
            queue.after_commit("fleet.tasks.publish_bundle", self.pk)

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

    A server taken out of service is decommissioned (fleet/instances.py), never deleted: its
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
        db_table = "policies_opainstance"  # the table keeps the name the policies app gave it
        ordering = ["environment", "name"]
        constraints = [models.UniqueConstraint(fields=["environment", "name"], name="unique_instance_name")]
        permissions = [("manage_opa_credentials", "Can issue, rotate and revoke OPA instance tokens")]

    def __str__(self) -> str:
        return f"{self.environment.name}/{self.name}"

    def client(self):
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
        db_table = "policies_opacredential"  # the table keeps the name the policies app gave it
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


class DriftAlert(models.Model):
    """An OPA instance found running something other than what Gavel published to it."""

    environment = models.ForeignKey(Environment, on_delete=models.PROTECT, related_name="drift_alerts")
    instance = models.ForeignKey(OpaInstance, null=True, blank=True, on_delete=models.PROTECT,
                                 related_name="drift_alerts")
    target_url = models.URLField()
    policy = models.ForeignKey("policies.Policy", on_delete=models.PROTECT, related_name="drift_alerts")
    resource = models.CharField(max_length=300, help_text="The OPA policy id that drifted.")
    expected_hash = models.CharField(max_length=64)
    actual_hash = models.CharField(max_length=64, blank=True, help_text="Blank: OPA does not have it at all.")
    detected_at = models.DateTimeField(auto_now_add=True)
    resolved_at = models.DateTimeField(null=True, blank=True)
    escalated = models.BooleanField(default=False, help_text="Drifted too often: a person must look.")
    repush = models.ForeignKey("policies.Publication", null=True, blank=True, on_delete=models.SET_NULL, related_name="+")

    class Meta:
        db_table = "policies_driftalert"  # the table keeps the name the policies app gave it
        ordering = ["-detected_at", "-id"]
        indexes = [models.Index(fields=["target_url", "resource", "-detected_at"])]

    def __str__(self) -> str:
        return f"drift of {self.resource} at {self.target_url}"

