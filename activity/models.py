"""What the activity log follows, one line per model (see tracking.py).

To log another model: add `track(TheModel)` below (an allowlist of `fields` when it holds a
secret), run `manage.py makemigrations activity`, and give roles nothing new: readers of the
activity log see every tracked model.
"""
import pghistory
from django.contrib.auth.models import User
from django.db import models
from pghistory.models import Events

from alerts.models import AlertRule
from approvals.models import ApprovalVote, HeldAction
from approvals.models import HeldActionEvent as HeldActionStep  # its own name would clash with HeldAction's events
from exports.models import ExportRecord
from fleet.models import Environment, OpaCredential, OpaInstance
from policies.models import ActiveVersion, Policy, PolicyVersion, PublishEvent, PublishRequest
from rollout.models import CanarySetting, KillSwitchChange, PolicyException

from .tracking import track

track(Policy)
track(PolicyVersion, exclude=["source", "tests"])  # immutable; its source stays on the version itself
track(PublishRequest)
track(PublishEvent)
track(ActiveVersion)  # which version each environment runs, and since when
track(CanarySetting)
track(KillSwitchChange)
track(PolicyException)
# Only a held action's outcome; its input came from outside and stays on the held action.
track(HeldAction, fields=["decision_id", "status", "decided_at", "consumed_at", "consumed_by_decision"])
# Its steps, among them a decision that claimed the approval and consumed nothing (approvals/services.py).
track(HeldActionStep, fields=["held_action", "kind", "detail", "created_at"], name="HeldActionStep",
      label="held action step")
track(ApprovalVote)
# Never the bundle token's hash or an instance's token; nor the status OPA reports every few seconds.
track(Environment, fields=["name", "opa_url", "delivery"])
# Decommissioning shows here: when, by whom (fleet/instances.py).
track(OpaInstance, fields=["environment", "name", "url", "token_state", "token_issued_at", "decommissioned_at",
                          "decommissioned_by"])
# Who issued, replaced and revoked OPA's tokens, never the hash; nor last use, which every upload changes.
track(OpaCredential, fields=["instance", "created_by", "expires_at", "replaced_by", "revoked_at", "revoked_by"])
track(AlertRule)
# Who exported what, how it ended and when its file was deleted; not the running row count a job
# updates as it writes.
track(ExportRecord, fields=["format", "delivery", "status", "query", "as_of", "expected_rows", "sha256", "file_name",
                            "error", "created_by", "created_at", "finished_at", "expired_at", "expired_by"])
# Never the password hash; nor last_login, which every login changes.
track(User, fields=["username", "first_name", "last_name", "email", "is_active", "is_staff", "is_superuser"])
track(User.groups.through, name="UserRole", label="user role", links=True)


class ActivityEntry(Events):
    """One change, from any tracked table (a union of the event tables), with the user and URL
    that pghistory's middleware put in its context. No user: Gavel itself (a worker, OPA's reports)."""

    user = pghistory.ProxyField("pgh_context__user", models.ForeignKey(
        User, null=True, on_delete=models.DO_NOTHING, db_constraint=False, related_name="+"))
    url = pghistory.ProxyField("pgh_context__url", models.TextField(null=True))

    class Meta:
        proxy = True
        default_permissions = ("view",)
        verbose_name_plural = "activity entries"
