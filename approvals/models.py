"""Held actions waiting for a person, reviewers' votes on them, and every step of their history."""
from django.conf import settings
from django.contrib.postgres.fields import ArrayField
from django.db import models


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
    logged_decision = models.OneToOneField("core.Decision", null=True, blank=True, on_delete=models.SET_NULL,
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
    submitted_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
                                     related_name="+", help_text="The enforcement point that submitted it (API).")
    created_at = models.DateTimeField(auto_now_add=True)
    expires_at = models.DateTimeField(help_text="Undecided by then, it is rejected.")
    escalated_at = models.DateTimeField(null=True, blank=True)
    decided_at = models.DateTimeField(null=True, blank=True)
    valid_until = models.DateTimeField(null=True, blank=True, help_text="An approved retry is allowed until then.")
    consumed_at = models.DateTimeField(null=True, blank=True)
    consumed_by_decision = models.CharField(max_length=100, blank=True)

    class Meta:
        db_table = "audit_heldaction"  # the table keeps the name the audit app gave it
        ordering = ["-risk", "created_at"]
        # The decided tabs list the newest decisions first; with 100,000 held actions a sort without
        # this index took 100 ms a page.
        indexes = [models.Index(fields=["status", "-decided_at", "-id"], name="heldaction_decided")]
        permissions = [("review_heldaction", "Can approve or reject held actions")]

    def __str__(self) -> str:
        return f"held action {self.decision_id} ({self.status})"

    @property
    def approvals(self) -> int:
        return sum(1 for vote in self.votes.all() if vote.approve)

    def log(self, kind: str, actor=None, detail: str = "") -> "HeldActionEvent":
        """Add a step to this action's history."""
        return self.events.create(kind=kind, actor=actor, detail=detail)


class ApprovalVote(models.Model):
    held_action = models.ForeignKey(HeldAction, on_delete=models.CASCADE, related_name="votes")
    reviewer = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    approve = models.BooleanField()
    comment = models.TextField()
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        db_table = "audit_approvalvote"  # the table keeps the name the audit app gave it
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
        REFUSED = "refused", "A decision claimed it and consumed nothing"

    held_action = models.ForeignKey(HeldAction, on_delete=models.CASCADE, related_name="events")
    kind = models.CharField(max_length=10, choices=Kind.choices)
    actor = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT,
                              related_name="+")
    detail = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        db_table = "audit_heldactionevent"  # the table keeps the name the audit app gave it
        ordering = ["created_at", "id"]



class SavedFilter(models.Model):
    """A search of the approval queue a person saved under a name, to apply again with one click.
    Each person's own; `query` is the queue's URL query (tab and filters, never the page number)."""

    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    name = models.CharField(max_length=80)
    query = models.CharField(max_length=1000)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]
        constraints = [models.UniqueConstraint(fields=["owner", "name"], name="saved_filter_owner_name")]

    def __str__(self) -> str:
        return self.name
