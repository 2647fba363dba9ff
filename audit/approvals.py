"""The approval queue: held actions, reviewers' votes, expiry, and the approvals OPA honours.

A decision whose result requires approval becomes a held action, once, whether its decision
log or the enforcement point's API call arrives first. Reviewers approve or reject it with a
comment; nobody approves their own request; a policy may ask for two approvals. An approved
action is pushed to OPA (`data.gavel_approvals`) so that the enforcement point's retry, which
names the approval, is allowed by OPA itself; the retry's decision log consumes it.
"""
from __future__ import annotations

import logging
import re
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import IntegrityError, transaction
from django.utils import timezone

from .models import ApprovalVote, Decision, HeldAction, HeldActionEvent
from .outcomes import derive_outcome, requester_of

log = logging.getLogger(__name__)
DATA_PATH = "gavel_approvals"


# Unicode's bidirectional controls (LRE..RLO, LRI..PDI, marks): inside a value from outside, they
# could reorder the words after it, so "wants to delete" reads as something else.
BIDI_CONTROLS = re.compile("[\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]")


def _word(value: Any) -> str:
    """A value from the input as one word of the sentence, isolated (FSI...PDI) when it carries
    bidirectional controls, so whatever it reorders stays inside it."""
    text = str(value)
    return f"\u2068{text}\u2069" if BIDI_CONTROLS.search(text) else text


def describe(request: Any) -> str:
    """The request in plain words, from the fields enforcement points commonly send:
    "support-bot (agent) for u-128 wants to delete with k8s.delete on k8s/payments in prod"."""
    if not isinstance(request, dict):
        return "a request whose input is not an object"
    who = _word(requester_of(request) or "someone")
    agent = request.get("agent", {}).get("id") if isinstance(request.get("agent"), dict) else None
    spec = request.get("spec") if isinstance(request.get("spec"), dict) else {}
    action, tool = request.get("action"), request.get("tool")
    target = request.get("resource") or request.get("service") or spec.get("name")
    words = [f"{_word(agent)} (agent) for {who}" if agent else who, "wants to", _word(action or "use")]
    if tool:
        words.append(f"with {_word(tool)}" if action else _word(tool))
    if request.get("resource_type"):
        words.append(_word(request["resource_type"]))
    if target:
        words.append(f"on {_word(target)}" if tool else _word(target))
    if request.get("environment"):
        words.append(f"in {_word(request['environment'])}")
    return " ".join(words)


def risk_of(request: Any, result: Any) -> int:
    """1-5: what the policy says (`risk` in the result), else a guess from the action."""
    if isinstance(result, dict) and isinstance(result.get("risk"), int):
        return max(1, min(5, result["risk"]))
    request = request if isinstance(request, dict) else {}
    risk = 2 + {"delete": 2, "write": 1, "update": 1}.get(str(request.get("action", "")), 0)
    return min(5, risk + (request.get("environment") == "prod"))


def _notify(held: HeldAction, kind: str) -> None:
    from .tasks import send_approval_notification

    transaction.on_commit(lambda: send_approval_notification.delay(held.pk, kind))


def _event(held: HeldAction, kind: str, actor=None, detail: str = "") -> None:
    HeldActionEvent.objects.create(held_action=held, kind=kind, actor=actor, detail=detail)


def hold(*, decision_id: str, path: str, request: Any, result: Any, created_from: str, policy=None,
         decision: Decision | None = None, callback_url: str = "") -> tuple[HeldAction, bool]:
    """The held action for a decision, created if it does not exist yet. Returns (held, created)."""
    existing = HeldAction.objects.filter(decision_id=decision_id).first()
    if existing is None:
        result_doc = result if isinstance(result, dict) else {}
        required = result_doc.get("approvals_required", 1)
        try:
            with transaction.atomic():
                held = HeldAction.objects.create(
                    decision_id=decision_id, logged_decision=decision,
                    policy=policy or getattr(decision, "policy", None),
                    path=path, input=request, reasons=derive_outcome(result)[1] if result is not None else [],
                    requester=requester_of(request), risk=risk_of(request, result),
                    approvals_required=required if required in (1, 2, 3) else 1, created_from=created_from,
                    callback_url=callback_url,
                    expires_at=timezone.now() + timedelta(minutes=settings.GAVEL_APPROVAL_TIMEOUT_MINUTES),
                )
                _event(held, HeldActionEvent.Kind.CREATED, detail=f"from the {created_from}")
                _notify(held, "new")
            return held, True
        except IntegrityError:  # the other path created it at the same moment
            existing = HeldAction.objects.get(decision_id=decision_id)
    changed = []
    if decision is not None and existing.logged_decision_id is None:
        existing.logged_decision = decision  # the API came first; now its decision log is in
        changed.append("logged_decision")
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
    if not reviewer.has_perm("audit.review_heldaction"):
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
    _event(held, HeldActionEvent.Kind.VOTED, reviewer, ("approve: " if approve else "reject: ") + comment.strip())
    now = timezone.now()
    if not approve:
        held.status, held.decided_at = HeldAction.Status.REJECTED, now
        _event(held, HeldActionEvent.Kind.REJECTED, reviewer, comment.strip())
    elif held.approvals >= held.approvals_required:
        held.status, held.decided_at = HeldAction.Status.APPROVED, now
        held.valid_until = now + timedelta(minutes=settings.GAVEL_APPROVAL_VALIDITY_MINUTES)
        _event(held, HeldActionEvent.Kind.APPROVED, reviewer,
               f"{held.approvals} of {held.approvals_required} approvals; a retry is allowed once until "
               f"{held.valid_until:%Y-%m-%d %H:%M} UTC")
    held.save()
    if held.status == HeldAction.Status.APPROVED:
        _push_before_commit()
    if held.status != HeldAction.Status.PENDING:
        _notify(held, "decided")
    return held


def expire(held: HeldAction) -> None:
    held.status, held.decided_at = HeldAction.Status.EXPIRED, timezone.now()
    held.save(update_fields=["status", "decided_at"])
    _event(held, HeldActionEvent.Kind.EXPIRED, detail="nobody decided within the time limit")
    _notify(held, "decided")


@transaction.atomic
def sweep(now=None) -> tuple[int, int]:
    """Expire what timed out and escalate what has waited half its time. Returns the counts."""
    now = now or timezone.now()
    pending = HeldAction.objects.select_for_update(skip_locked=True).filter(status=HeldAction.Status.PENDING)
    expired = list(pending.filter(expires_at__lte=now))
    for held in expired:
        expire(held)
    escalated = 0
    for held in pending.filter(expires_at__gt=now, escalated_at__isnull=True):
        if held.created_at + (held.expires_at - held.created_at) / 2 <= now:
            held.escalated_at = now
            held.save(update_fields=["escalated_at"])
            _event(held, HeldActionEvent.Kind.ESCALATED, detail="half its time limit has passed")
            _notify(held, "escalated")
            escalated += 1
    return len(expired), escalated


def consume(approval_ref: str, decision: Decision) -> None:
    """OPA allowed a retry that named this approval: it is used up and leaves OPA's data."""
    with transaction.atomic():
        held = HeldAction.objects.select_for_update().filter(decision_id=approval_ref).first()
        if held is None or held.consumed_at:
            return
        held.consumed_at, held.consumed_by_decision = timezone.now(), decision.decision_id
        held.save(update_fields=["consumed_at", "consumed_by_decision"])
        _event(held, HeldActionEvent.Kind.CONSUMED, detail=f"decision {decision.decision_id}")
        push_after_commit()


def record_decisions(decisions: list[Decision]) -> None:
    """Called by ingest for newly stored decisions: hold what needs approval, consume retries."""
    for decision in decisions:
        # A retry naming an approval that no longer holds is answered to the client, not queued again.
        is_retry = isinstance(decision.input, dict) and "gavel_approval" in decision.input
        if decision.outcome == "require_approval" and not is_retry:
            hold(decision_id=decision.decision_id, path=decision.path, request=decision.input,
                 result=decision.result, created_from="decision log", decision=decision)
        if decision.approval_ref:
            consume(decision.approval_ref, decision)


def approvals_document(now=None) -> dict[str, list[dict]]:
    """What OPA needs to allow approved retries: per policy, each approval's input and deadline."""
    now = now or timezone.now()
    usable = HeldAction.objects.filter(status=HeldAction.Status.APPROVED, consumed_at__isnull=True,
                                       valid_until__gt=now, policy__isnull=False).select_related("policy")
    document: dict[str, list[dict]] = {}
    for held in usable:
        document.setdefault(held.policy.name, []).append({
            "id": held.decision_id, "input": held.input,
            "valid_until_ns": int(held.valid_until.timestamp() * 1_000_000_000),
        })
    return document


def _push_before_commit() -> None:
    """Put the approval in OPA before anyone can read "approved": a waiting enforcement point
    retries at once, and must find it there. If OPA cannot take it now, the task retries."""
    from policies.opa import OpaUnreachable

    try:
        push_approvals()
    except OpaUnreachable:
        log.warning("OPA unreachable; the approval reaches it when the push task succeeds")
        push_after_commit()


def push_after_commit() -> None:
    from .tasks import push_approvals

    transaction.on_commit(lambda: push_approvals.delay())


def push_approvals() -> int:
    """PUT the approvals document to every environment's OPA. Raises OpaUnreachable to retry."""
    from policies.models import Environment
    from policies.opa import opa_client

    document = approvals_document()
    environments = list(Environment.objects.all())
    # Pull environments get the document in their bundle: OPA refuses REST writes there.
    targets = {(i.url or e.target_url, i.token) for e in environments if not e.is_pull for i in e.targets()}
    for url, token in sorted(targets if environments else {(settings.OPA_URL, "")}):
        with opa_client(url, token=token or None) as opa:
            opa.put_data(DATA_PATH, document)
    return sum(len(items) for items in document.values())
