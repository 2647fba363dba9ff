"""The approval queue: held actions and reviewers' votes, and what they queue.

A decision whose result requires approval becomes a held action, once, whether its decision
log or the enforcement point's API call arrives first. Reviewers approve or reject it with a
comment; nobody approves their own request; a policy may ask for two approvals. An approved
action is pushed to OPA (`data.gavel_approvals`) so that the enforcement point's retry, which
names the approval, is allowed by OPA itself; the retry's decision log consumes it.
"""
from __future__ import annotations

import logging
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import IntegrityError, transaction
from django.utils import timezone

from core import queue
from core.facts import user_of
from core.models import Decision
from core.opa.client import OpaUnreachable
from core.outcomes import derive_outcome

from . import notifications, opa_data
from .expiry import expire
from .models import ApprovalVote, HeldAction, HeldActionEvent
from .wording import risk_of

log = logging.getLogger(__name__)


def new_held(*, decision_id: str, path: str, request: Any, result: Any, created_from: str, policy=None,
             decision: Decision | None = None, callback_url: str = "", submitted_by=None) -> HeldAction:
    """A held action for the decision, not saved yet."""
    result_doc = result if isinstance(result, dict) else {}
    required = result_doc.get("approvals_required", 1)
    return HeldAction(
        decision_id=decision_id, logged_decision=decision, policy=policy or getattr(decision, "policy", None),
        path=path, input=request if request is not None else {},  # OPA may log no input
        reasons=derive_outcome(result)[1] if result is not None else [],
        requester=user_of(request)[:200], risk=risk_of(request, result),
        approvals_required=required if required in (1, 2, 3) else 1, created_from=created_from,
        callback_url=callback_url, submitted_by=submitted_by,
        expires_at=timezone.now() + timedelta(minutes=settings.GAVEL_APPROVAL_TIMEOUT_MINUTES),
    )


def hold(*, decision_id: str, path: str, request: Any, result: Any, created_from: str, policy=None,
         decision: Decision | None = None, callback_url: str = "", submitted_by=None) -> tuple[HeldAction, bool]:
    """The held action for a decision, created if it does not exist yet. Returns (held, created).

    `submitted_by` is the enforcement point's account (API). The first one to submit the action
    owns it, and only it sets the callback, which must be allowed (notifications.check_callback)."""
    if callback_url:
        notifications.check_callback(callback_url)
    existing = HeldAction.objects.filter(decision_id=decision_id).first()
    if existing is None:
        try:
            with transaction.atomic():
                held = new_held(decision_id=decision_id, path=path, request=request, result=result,
                                created_from=created_from, policy=policy, decision=decision,
                                callback_url=callback_url, submitted_by=submitted_by)
                held.save(force_insert=True)
                held.log(HeldActionEvent.Kind.CREATED, detail=f"from the {created_from}")
                notifications.notify(held, "new")
            return held, True
        except IntegrityError:  # the other path created it at the same moment...
            existing = HeldAction.objects.filter(decision_id=decision_id).first()
            if existing is None:  # ...or the row itself was refused: that error is the one to see
                raise
    changed = []
    if decision is not None and existing.logged_decision_id is None:
        existing.logged_decision = decision  # the API came first; now its decision log is in
        changed.append("logged_decision")
    if submitted_by is not None and existing.submitted_by_id is None:
        existing.submitted_by = submitted_by  # the decision log came first; this enforcement point submits it
        changed.append("submitted_by")
    if callback_url and existing.submitted_by_id != getattr(submitted_by, "pk", None):
        raise PermissionDenied("only the enforcement point that submitted this action sets its callback")
    if callback_url and not existing.callback_url:
        existing.callback_url = callback_url
        changed.append("callback_url")
    if changed:
        existing.save(update_fields=changed)
    return existing, False


@transaction.atomic
def review(held: HeldAction, *, reviewer, approve: bool, comment: str) -> HeldAction:
    """A reviewer's vote. Rejection decides at once; approval once enough reviewers agree."""
    held = HeldAction.objects.select_for_update().get(pk=held.pk)
    if not reviewer.has_perm("approvals.review_heldaction"):
        raise PermissionDenied("reviewing held actions needs the reviewer or security admin role")
    if held.requester and reviewer.get_username() == held.requester:
        raise PermissionDenied("nobody approves their own request")
    if held.status == HeldAction.Status.PENDING and held.expires_at <= timezone.now():
        expire(held)
    if held.status != HeldAction.Status.PENDING:
        raise ValidationError(f"this action is already {held.get_status_display().lower()}")
    if not comment.strip():
        raise ValidationError("say why: a comment is required")
    if held.votes.filter(reviewer=reviewer).exists():
        raise ValidationError("you already reviewed this action; another reviewer must decide")
    ApprovalVote.objects.create(held_action=held, reviewer=reviewer, approve=approve, comment=comment.strip())
    held.log(HeldActionEvent.Kind.VOTED, reviewer, ("approve: " if approve else "reject: ") + comment.strip())
    now = timezone.now()
    if not approve:
        held.status, held.decided_at = HeldAction.Status.REJECTED, now
        held.log(HeldActionEvent.Kind.REJECTED, reviewer, comment.strip())
    elif held.approvals >= held.approvals_required:
        held.status, held.decided_at = HeldAction.Status.APPROVED, now
        held.valid_until = now + timedelta(minutes=settings.GAVEL_APPROVAL_VALIDITY_MINUTES)
        held.log(HeldActionEvent.Kind.APPROVED, reviewer,
               f"{held.approvals} of {held.approvals_required} approvals; a retry is allowed once until "
               f"{held.valid_until:%Y-%m-%d %H:%M} UTC")
    held.save()
    if held.status == HeldAction.Status.APPROVED:
        _push_before_commit()
    if held.status != HeldAction.Status.PENDING:
        notifications.notify(held, "decided")
    return held


def review_many(decision_ids: list[str], *, reviewer, approve: bool, comment: str) -> tuple[list, dict]:
    """One verdict and comment for several held actions: each goes through review() on its own
    (own transaction, own checks, each approval bound to its own action and pushed as today), so
    one that cannot be reviewed (one's own, already decided) is reported and the rest go on.
    Returns (the reviewed actions, {decision_id: why not})."""
    done, refused = [], {}
    for decision_id in dict.fromkeys(decision_ids):  # each once, in the order given
        held = HeldAction.objects.filter(decision_id=decision_id).first()
        if held is None:
            refused[decision_id] = "no such held action"
            continue
        try:
            done.append(review(held, reviewer=reviewer, approve=approve, comment=comment))
        except (PermissionDenied, ValidationError) as exc:
            refused[decision_id] = " ".join(getattr(exc, "messages", [str(exc)]))
    return done, refused


def consume(approval_ref: str, decision: Decision) -> bool:
    """A retry's decision log says OPA applied this approval. It is used up, and leaves OPA's
    data, only if the retry is the one it was granted for; otherwise the decision stays stored,
    consumes nothing, and the held action's history (and the activity log) says why."""
    with transaction.atomic():
        held = (HeldAction.objects.select_for_update(of=("self",)).filter(decision_id=approval_ref)
                .select_related("logged_decision").first())
        if held is None:
            return False
        refusal = why_not_consumed_by(held, decision)
        if refusal:
            held.log(HeldActionEvent.Kind.REFUSED, detail=f"decision {decision.decision_id} consumed nothing: {refusal}")
            return False
        held.consumed_at, held.consumed_by_decision = timezone.now(), decision.decision_id
        held.save(update_fields=["consumed_at", "consumed_by_decision"])
        held.log(HeldActionEvent.Kind.CONSUMED, detail=f"decision {decision.decision_id}")
        queue.after_commit("approvals.tasks.push_approvals")
        return True


def why_not_consumed_by(held: HeldAction, decision: Decision) -> str:
    """Why `decision` may not use `held`'s approval, or "" when it may: an approved, unused
    approval, by a decision of the environment and policy of the held action's own decision log,
    with that log's input (compared as stored, so masked alike) plus `gavel_approval`."""
    if held.consumed_at:
        return f"the approval was already used by decision {held.consumed_by_decision}"
    if held.status != HeldAction.Status.APPROVED:
        return f"the action is {held.get_status_display().lower()}, not approved"
    if held.valid_until and decision.timestamp > held.valid_until:
        return "the approval had lapsed when the decision was made"
    granted = held.logged_decision
    if granted is None:
        return "the held action's own decision log has not arrived, so where it was granted is unknown"
    if decision.environment != granted.environment:
        return f"it was granted in environment {granted.environment!r}, not {decision.environment!r}"
    if decision.policy_id is None or decision.policy_id != granted.policy_id:
        return f"it was granted for policy {granted.policy}, not {decision.policy or decision.path}"
    retried = dict(decision.input) if isinstance(decision.input, dict) else None
    if retried is None or retried.pop("gavel_approval", None) != held.decision_id or retried != granted.input:
        return "the input differs from the one it was granted for"
    return ""


def record_decisions(decisions: list[Decision], **_) -> None:
    """New decisions (core.store's `decisions_stored`): hold what needs approval, consume retries."""
    to_hold, retries = [], []
    for decision in decisions:
        if decision.from_ci:
            continue  # a CI check holds nothing: no enforcement point waits to retry it
        # A retry naming an approval that no longer holds is answered to the client, not queued again.
        is_retry = isinstance(decision.input, dict) and "gavel_approval" in decision.input
        if decision.outcome == "require_approval" and not is_retry:
            to_hold.append(decision)
        if decision.approval_ref:
            retries.append(decision)
    # Holds first: a retry consumes its approval only once the held action's own decision log is
    # linked, and that log may arrive in the same batch.
    hold_logged(to_hold)
    for decision in retries:
        consume(decision.approval_ref, decision)


def already_held(decision_ids: list[str]) -> set[str]:
    return set(HeldAction.objects.filter(decision_id__in=decision_ids).values_list("decision_id", flat=True))


def hold_logged(decisions: list[Decision]) -> None:
    """Hold a batch's decisions that need a person, together: the held actions in one INSERT and
    their first events in another, where hold() costs each one five round trips. Those an
    enforcement point submitted first, or submits meanwhile, go through hold() one by one."""
    if not decisions:
        return
    submitted = already_held([d.decision_id for d in decisions])
    fresh = [d for d in decisions if d.decision_id not in submitted]
    created: list[HeldAction] = []
    if fresh:
        try:
            with transaction.atomic():
                created = HeldAction.objects.bulk_create([
                    new_held(decision_id=d.decision_id, path=d.path, request=d.input, result=d.result,
                             created_from="decision log", decision=d) for d in fresh])
                HeldActionEvent.objects.bulk_create([
                    HeldActionEvent(held_action=held, kind=HeldActionEvent.Kind.CREATED,
                                    detail="from the decision log") for held in created])
        except IntegrityError:  # an enforcement point submitted one of them meanwhile
            created = []
    for held in created:
        notifications.notify(held, "new")
    done = {held.decision_id for held in created}
    for decision in decisions:
        if decision.decision_id not in done:
            hold(decision_id=decision.decision_id, path=decision.path, request=decision.input,
                 result=decision.result, created_from="decision log", decision=decision)


def _push_before_commit() -> None:
    """Put the approval in OPA before anyone can read "approved": a waiting enforcement point
    retries at once, and must find it there. If OPA cannot take it now, the task retries."""
    try:
        opa_data.push_approvals()
    except OpaUnreachable:
        log.warning("OPA unreachable; the approval reaches it when the push task succeeds")
        queue.after_commit("approvals.tasks.push_approvals")
