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


@transaction.atomic
def approve_exception(exception: PolicyException, *, approved_by) -> PolicyException:
    """A security admin other than the requester approves; OPA gets it once this commits."""
    exception = PolicyException.objects.select_for_update().get(pk=exception.pk)
    if exception.requested_by_id == approved_by.pk:
        raise PermissionDenied("nobody approves their own exception")
    if not approved_by.has_perm("rollout.approve_policyexception"):
        raise PermissionDenied("approving exceptions needs the security admin role")
    if exception.status != PolicyException.Status.PENDING:
        raise ValidationError(f"this exception is {exception.get_status_display().lower()}, not pending")
    exception.approved_by = approved_by
    exception.approved_at = timezone.now()
    exception.save(update_fields=["approved_by", "approved_at"])
    push_runtime_after_commit(exception.environment)
    return exception


@transaction.atomic
def revoke_exception(exception: PolicyException, *, revoked_by) -> PolicyException:
    if not revoked_by.has_perm("rollout.approve_policyexception"):
        raise PermissionDenied("revoking exceptions needs the security admin role")
    exception.revoked_at = timezone.now()
    exception.save(update_fields=["revoked_at"])
    push_runtime_after_commit(exception.environment)
    return exception
