"""Who asked for a version to be published, who approved it, when, and where it runs now:
read from the publish requests, the publications they made and the environments' active versions."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from policies.models import ActiveVersion, PolicyVersion, PublishEvent


def person(user) -> str:
    """A person as an auditor reads them: full name and login ("Ann Author (ann)"), else the login."""
    if user is None:
        return "Gavel"
    full = (user.get_full_name() or "").strip()
    login = user.get_username()
    return f"{full} ({login})" if full and full != login else login


@dataclass(frozen=True)
class Step:
    environment: str
    requested_by: str
    requested_at: datetime
    reason: str
    status: str  # the request's status, in words
    decided_by: str | None
    decided_at: datetime | None
    note: str
    published_at: datetime | None  # when OPA confirmed the publication the approval made


@dataclass(frozen=True)
class Running:
    environment: str
    since: datetime


def approval_chain(version: PolicyVersion) -> list[Step]:
    """Every request to publish `version`, oldest first, with its decision and publication."""
    requests = version.publish_requests.select_related("requested_by", "decided_by", "environment",
                                                       "publication").order_by("requested_at", "id")
    return [Step(
        environment=r.environment.name if r.environment_id else "the default environment",
        requested_by=person(r.requested_by), requested_at=r.requested_at, reason=r.reason,
        status=r.get_status_display(), decided_by=person(r.decided_by) if r.decided_by_id else None,
        decided_at=r.decided_at, note=r.decision_note,
        published_at=r.publication.confirmed_at if r.publication_id else None,
    ) for r in requests]


def running_in(version: PolicyVersion) -> list[Running]:
    """The environments that run `version` now, and since when."""
    return [Running(a.environment.name, a.since) for a in
            ActiveVersion.objects.filter(version=version).select_related("environment").order_by("environment__name")]


def other_history(version: PolicyVersion):
    """Rollbacks and retirements that touched this version (they need no second person)."""
    return (PublishEvent.objects.filter(version=version)
            .exclude(action__in=[PublishEvent.Action.REQUESTED, PublishEvent.Action.APPROVED,
                                 PublishEvent.Action.REJECTED, PublishEvent.Action.PUBLISHED])
            .select_related("actor", "environment").order_by("created_at"))
