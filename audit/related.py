"""What a decision page shows around one decision: the exceptions and approval involved, and
the other decisions of the same user and of the same session."""
from __future__ import annotations

from datetime import timedelta

from django.conf import settings

from core import facts
from core.models import Decision
from rollout.models import PolicyException

RELATED_LIMIT = 20


def exceptions_applied(decision: Decision) -> list[PolicyException]:
    """The exceptions that waived denials in this decision, in the order OPA listed them."""
    found = PolicyException.objects.in_bulk(decision.exception_ids)
    return [found[pk] for pk in decision.exception_ids if pk in found]


def same_user(decision: Decision, limit: int = RELATED_LIMIT) -> list[Decision]:
    """The user's other decisions, newest first (the indexed `user` column)."""
    if not decision.user:
        return []
    others = Decision.objects.filter(user=decision.user).exclude(pk=decision.pk)
    return list(others.for_rows()[:limit])


def same_session(decision: Decision, limit: int = RELATED_LIMIT) -> list[Decision]:
    """Other decisions whose input names the same session at the same path.

    Sessions are not a column, so the JSON lookup is bounded to a window around the decision
    (GAVEL_SESSION_WINDOW_HOURS either side), which the timestamp index narrows first.
    """
    session = facts.session_of(decision.input)
    if session is None:
        return []
    path, value = session
    window = timedelta(hours=settings.GAVEL_SESSION_WINDOW_HOURS)
    # Containment ({"context": {"session_id": value}}) rather than a key lookup: no path segment
    # can be mistaken for a Django lookup name.
    contained = value
    for key in reversed(path.split(".")):
        contained = {key: contained}
    others = (Decision.objects.filter(timestamp__gte=decision.timestamp - window,
                                      timestamp__lte=decision.timestamp + window, input__contains=contained)
              .exclude(pk=decision.pk).for_rows())
    return list(others[:limit])
