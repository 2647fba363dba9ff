"""Policies, their immutable versions, and each attempt to publish a version to OPA."""
import hashlib

from django.conf import settings
from django.db import models


def sha256_of(source: str) -> str:
    return hashlib.sha256(source.encode("utf-8")).hexdigest()


class Policy(models.Model):
    """One Rego package that Gavel manages. OPA knows it as the policy id `gavel/<name>`."""

    name = models.SlugField(max_length=100, unique=True, help_text="Short identifier, also the OPA policy id.")
    package = models.CharField(max_length=200, unique=True, help_text="The Rego package, e.g. gavel.agent_gateway.")
    title = models.CharField(max_length=200)
    description = models.TextField(blank=True)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)
    # What OPA was last confirmed to run; only a confirmed publication moves it.
    active_version = models.ForeignKey(
        "PolicyVersion", null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )

    class Meta:
        ordering = ["name"]
        verbose_name_plural = "policies"

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


class PolicyVersion(models.Model):
    """A saved source of a policy. Never changed after it is saved (a database trigger agrees)."""

    policy = models.ForeignKey(Policy, on_delete=models.PROTECT, related_name="versions")
    number = models.PositiveIntegerField()
    source = models.TextField()
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
    def is_active(self) -> bool:
        return self.policy.active_version_id == self.pk

    @property
    def publication_in_flight(self) -> bool:
        return self.publications.exclude(status__in=Publication.FINISHED).exists()


class Publication(models.Model):
    """One request to make OPA run a version, and what came of it."""

    class Status(models.TextChoices):
        QUEUED = "queued", "Queued"
        UNREACHABLE = "unreachable", "OPA unreachable, retrying"
        OK = "ok", "Published"
        FAILED = "failed", "Failed"

    version = models.ForeignKey(PolicyVersion, on_delete=models.PROTECT, related_name="publications")
    target_url = models.URLField(help_text="The OPA server this publication goes to.")
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.QUEUED)
    detail = models.TextField(blank=True, help_text="OPA's answer, or why the push failed.")
    attempts = models.PositiveIntegerField(default=0)
    requested_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    requested_at = models.DateTimeField(auto_now_add=True)
    last_attempt_at = models.DateTimeField(null=True, blank=True)
    confirmed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-requested_at"]
        indexes = [models.Index(fields=["status", "confirmed_at"])]

    def __str__(self) -> str:
        return f"{self.version} → {self.target_url} ({self.status})"

    FINISHED = (Status.OK, Status.FAILED)

    @property
    def is_finished(self) -> bool:
        return self.status in self.FINISHED
