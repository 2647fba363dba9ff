"""Policy exceptions: requested with a justification and ticket, approved by a second
security admin, pushed to OPA while active, and gone from OPA at their expiry."""
from __future__ import annotations

from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.utils import timezone

from fleet.models import Environment
from policies.models import Policy

from .models import PolicyException
from .services import push_runtime_after_commit


def _clean_match(match) -> list[dict]:
    if not isinstance(match, list) or not match:
        raise ValidationError("name at least one input field the exception covers")
    cleaned = []
    for condition in match:
        if not isinstance(condition, dict) or not str(condition.get("field", "")).strip():
            raise ValidationError("each condition needs a field, e.g. user.id")
        value = condition.get("value")
        if not isinstance(value, (str, int, float, bool)):
            raise ValidationError(f"the value for {condition['field']} must be a string, number or boolean")
        cleaned.append({"field": condition["field"].strip(), "value": value})
    return cleaned


@transaction.atomic
def request_exception(*, policy: Policy, environment: Environment, match, justification: str, ticket: str,
                      expires_at, requested_by, reason_contains: str = "") -> PolicyException:
    if expires_at <= timezone.now():
        raise ValidationError("the expiry must be in the future")
    if not justification.strip() or not ticket.strip():
        raise ValidationError("a justification and a ticket are required")
    return PolicyException.objects.create(
        policy=policy, environment=environment, match=_clean_match(match), justification=justification.strip(),
        ticket=ticket.strip(), expires_at=expires_at, requested_by=requested_by,
        reason_contains=reason_contains.strip(),
    )


APPROVER_ROLE = "security admin"


def awaiting_whom(exception: PolicyException, viewer=None) -> str:
    """Who can make a pending exception apply, in words for `viewer`: an author's request needs
    "a security admin"; a security admin's own, "another security admin" (or "... other than sam")."""
    if not exception.requested_by.has_perm("rollout.approve_policyexception"):
        return f"a {APPROVER_ROLE}"
    if viewer is not None and viewer.pk == exception.requested_by_id:
        return f"another {APPROVER_ROLE}"
    return f"a {APPROVER_ROLE} other than {exception.requested_by}"


def _required(text: str, what: str) -> str:
    text = (text or "").strip()
    if not text:
        raise ValidationError(f"{what} is required")
    return text


def _pending_for_decision(exception: PolicyException, user, gerund: str, verb: str) -> PolicyException:
    exception = PolicyException.objects.select_for_update().get(pk=exception.pk)
    if not user.has_perm("rollout.approve_policyexception"):
        raise PermissionDenied(f"{gerund} exceptions needs the {APPROVER_ROLE} role")
    if exception.requested_by_id == user.pk:
        raise PermissionDenied(f"nobody {verb} their own exception: another {APPROVER_ROLE} decides")
    if exception.status != PolicyException.Status.PENDING:
        raise ValidationError(f"this exception is {exception.get_status_display().lower()}, not pending")
    return exception


@transaction.atomic
def approve_exception(exception: PolicyException, *, approved_by, comment: str) -> PolicyException:
    """A security admin other than the requester approves, saying why; OPA gets it once this commits."""
    comment = _required(comment, "a comment on the approval")
    exception = _pending_for_decision(exception, approved_by, "Approving", "approves")
    exception.approved_by = approved_by
    exception.approved_at = timezone.now()
    exception.decision_comment = comment
    exception.save(update_fields=["approved_by", "approved_at", "decision_comment"])
    push_runtime_after_commit(exception.environment)
    return exception


@transaction.atomic
def reject_exception(exception: PolicyException, *, rejected_by, comment: str) -> PolicyException:
    """A security admin other than the requester refuses, saying why. It never reached OPA: nothing to push."""
    comment = _required(comment, "a comment saying why it is rejected")
    exception = _pending_for_decision(exception, rejected_by, "Rejecting", "rejects")
    exception.rejected_by = rejected_by
    exception.rejected_at = timezone.now()
    exception.decision_comment = comment
    exception.save(update_fields=["rejected_by", "rejected_at", "decision_comment"])
    return exception


@transaction.atomic
def revoke_exception(exception: PolicyException, *, revoked_by, reason: str) -> PolicyException:
    """End an active exception before its expiry, saying why; OPA drops it once this commits."""
    reason = _required(reason, "a reason for revoking")
    if not revoked_by.has_perm("rollout.approve_policyexception"):
        raise PermissionDenied(f"revoking exceptions needs the {APPROVER_ROLE} role")
    exception = PolicyException.objects.select_for_update().get(pk=exception.pk)
    if exception.status != PolicyException.Status.ACTIVE:
        raise ValidationError(f"this exception is {exception.get_status_display().lower()}, not active")
    exception.revoked_at = timezone.now()
    exception.revoked_by = revoked_by
    exception.revoke_reason = reason[:500]
    exception.save(update_fields=["revoked_at", "revoked_by", "revoke_reason"])
    push_runtime_after_commit(exception.environment)
    return exception
