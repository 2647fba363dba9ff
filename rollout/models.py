"""Rollout state Gavel pushes to OPA: canary settings, the kill switch, and policy exceptions."""
from django.conf import settings
from django.contrib.postgres.fields import ArrayField
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.utils import timezone


class Mode(models.TextChoices):
    OFF = "off", "Off"
    DRY_RUN = "dry-run", "Dry-run"
    ENFORCE = "enforce", "Enforce"


def describe_mode(mode: str, enforce_percentage: int, kill_switch: bool = False) -> str:
    """A rollout's effective mode in words, e.g. "enforced for 75 %, dry-run for the others"."""
    if kill_switch:
        return "dry-run for everyone: kill switch engaged"
    if mode == Mode.ENFORCE or enforce_percentage >= 100:
        return "enforced for everyone"
    rest = "dry-run" if mode == Mode.DRY_RUN else "off"
    if enforce_percentage:
        return f"enforced for {enforce_percentage} %, {rest} for the others"
    return f"{rest} for everyone"


class CanarySetting(models.Model):
    """One saved state of a policy's rollout in an environment. Rows are never changed:
    the newest is in force and the older ones are its history."""

    policy = models.ForeignKey("policies.Policy", on_delete=models.PROTECT, related_name="canary_settings")
    environment = models.ForeignKey("fleet.Environment", on_delete=models.PROTECT, related_name="canary_settings")
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
        db_table = "policies_canarysetting"  # the table keeps the name the policies app gave it
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["policy", "environment", "-created_at"])]

    @property
    def summary(self) -> str:
        return describe_mode(self.mode, self.enforce_percentage)


class KillSwitchChange(models.Model):
    """Engaging the kill switch puts every policy of the environment in dry-run at once."""

    environment = models.ForeignKey("fleet.Environment", on_delete=models.PROTECT, related_name="kill_switch_changes")
    engaged = models.BooleanField()
    changed_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    reason = models.CharField(max_length=500)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        db_table = "policies_killswitchchange"  # the table keeps the name the policies app gave it
        ordering = ["-created_at", "-id"]


class PolicyExceptionQuerySet(models.QuerySet):
    def approved(self):
        return self.filter(approved_by__isnull=False, revoked_at__isnull=True)

    def active(self, now=None):
        return self.approved().filter(expires_at__gt=now or timezone.now())

    def pending(self):
        return self.filter(approved_by__isnull=True, rejected_by__isnull=True, revoked_at__isnull=True,
                           expires_at__gt=timezone.now())

    def rejected(self):
        return self.filter(rejected_by__isnull=False).order_by("-rejected_at")

    def revoked(self):
        return self.filter(revoked_at__isnull=False).order_by("-revoked_at")

    def expiring_within(self, delta):
        now = timezone.now()
        return self.active(now).filter(expires_at__lte=now + delta)

    def expired(self):
        """Ran out on their own: neither rejected nor revoked before their expiry."""
        return self.filter(expires_at__lte=timezone.now(), rejected_by__isnull=True, revoked_at__isnull=True)


class PolicyException(models.Model):
    """A time-boxed waiver: denials of `policy` for requests matching `match` are let through,
    once a security admin other than the requester approves, until `expires_at`."""

    class Status(models.TextChoices):
        PENDING = "pending", "Pending approval"
        ACTIVE = "active", "Active"
        EXPIRED = "expired", "Expired"
        REVOKED = "revoked", "Revoked"
        REJECTED = "rejected", "Rejected"

    policy = models.ForeignKey("policies.Policy", on_delete=models.PROTECT, related_name="exceptions")
    environment = models.ForeignKey("fleet.Environment", on_delete=models.PROTECT, related_name="exceptions")
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
    rejected_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT,
                                    related_name="+")
    rejected_at = models.DateTimeField(null=True, blank=True)
    # The approver's or rejecter's comment: why it was granted or refused.
    decision_comment = models.TextField(blank=True)
    expires_at = models.DateTimeField()
    revoked_at = models.DateTimeField(null=True, blank=True)
    revoked_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT,
                                   related_name="+")
    revoke_reason = models.CharField(max_length=500, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    objects = PolicyExceptionQuerySet.as_manager()

    class Meta:
        db_table = "policies_policyexception"  # the table keeps the name the policies app gave it
        ordering = ["expires_at"]
        permissions = [("approve_policyexception", "Can approve a policy exception")]

    def __str__(self) -> str:
        return f"exception {self.pk} on {self.policy}"

    @property
    def status(self) -> str:
        if self.rejected_by_id:
            return self.Status.REJECTED
        if self.revoked_at:
            return self.Status.REVOKED
        if self.expires_at <= timezone.now():
            return self.Status.EXPIRED
        return self.Status.ACTIVE if self.approved_by_id else self.Status.PENDING

    def get_status_display(self) -> str:
        return self.Status(self.status).label

