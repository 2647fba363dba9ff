"""What is waiting for the signed-in person: the home page's "Waiting for you" and the counts in
the navigation. One function decides both, so the count and the list never disagree.

Each kind is shown only to the roles that can act on it (by permission, as everywhere), and
leaves out what the person may not act on themselves (their own publish request, a held action
they asked for or already voted on). Every count is one indexed query (see the partial indexes
on publish requests, held actions' status, open alerts and finished exports by their creator).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from django.urls import reverse

from alerts.models import Alert
from approvals.models import HeldAction
from exports import models as exports
from policies.models import PublishRequest

PREVIEW = 5  # items listed per kind on the home page; the count says how many in all


@dataclass
class Waiting:
    kind: str  # publish_requests | held_actions | alerts | exports
    label: str  # "held action to review|held actions to review": one, then many
    url: str
    count: int
    short: str = ""  # the navigation's word for it

    @property
    def heading(self) -> str:
        """"1 held action to review", "3 held actions to review"."""
        one, _, many = self.label.partition("|")
        return f"{self.count} {one if self.count == 1 else many}"
    items: list = field(default_factory=list)  # [(text, url)] on the home page only


def _publish_requests(user):
    return (PublishRequest.objects.filter(status=PublishRequest.Status.PENDING)
            .exclude(requested_by=user).exclude(version__author=user))


def _held_actions(user):
    return (HeldAction.objects.filter(status=HeldAction.Status.PENDING)
            .exclude(requester=user.get_username()).exclude(votes__reviewer=user))


def _open_alerts():
    return Alert.objects.filter(closed_at__isnull=True)


def _finished_exports(user):
    """Their own exports that finished since they last opened the list of exports."""
    return exports.ready_unseen(user)


def waiting_for(user, with_items: bool = False) -> list[Waiting]:
    """The kinds of work waiting for `user`, each with its count (and its first items on request)."""
    if user is None or not user.is_authenticated:
        return []
    found = []
    if user.has_perm("policies.publish_policyversion") and user.has_perm("policies.view_publishrequest"):
        rows = _publish_requests(user)
        entry = Waiting("publish_requests", "publication request to approve|publication requests to approve", reverse("home") + "#waiting-publish_requests", rows.count(),
                        "to publish")
        if with_items and entry.count:
            for request in rows.select_related("version__policy", "environment", "requested_by")[:PREVIEW]:
                version = request.version
                where = f" to {request.environment.name}" if request.environment else ""
                entry.items.append((
                    f"{version.policy.title} v{version.number}{where}, asked by {request.requested_by}: "
                    f"{request.reason}",
                    reverse("policies:version", args=[version.policy.name, version.number])))
        found.append(entry)
    if user.has_perm("approvals.review_heldaction"):
        rows = _held_actions(user)
        entry = Waiting("held_actions", "held action to review|held actions to review", reverse("approvals:queue"), rows.count(),
                        "to review")
        if with_items and entry.count:
            for held in rows.order_by("-risk", "created_at")[:PREVIEW]:
                entry.items.append((f"{held.requester or 'someone'}: {', '.join(held.reasons) or held.path}",
                                    reverse("approvals:detail", args=[held.decision_id])))
        found.append(entry)
    if user.has_perm("alerts.change_alertrule"):
        rows = _open_alerts()
        entry = Waiting("alerts", "open alert|open alerts", reverse("alerts:list"), rows.count(), "alerts")
        if with_items and entry.count:
            for alert in rows.select_related("rule")[:PREVIEW]:
                entry.items.append((f"{alert.rule.name} since {alert.opened_at:%Y-%m-%d %H:%M} UTC",
                                    reverse("alerts:list")))
        found.append(entry)
    if user.has_perm("core.export_decision"):
        rows = _finished_exports(user)
        entry = Waiting("exports", "export ready since you last looked|exports ready since you last looked",
                        reverse("exports:list"), rows.count(), "exports ready")
        if with_items and entry.count:
            for record in rows[:PREVIEW]:
                entry.items.append((f"Export {record.pk} ({record.get_format_display()}, {record.row_count} rows): "
                                    f"{record.readable_filter or 'every decision'}",
                                    reverse("exports:detail", args=[record.pk])))
        found.append(entry)
    return found


def counts_query_plans(user) -> dict[str, str]:
    """EXPLAIN of each count's query, for the test that pins they use an index."""
    querysets = {"publish_requests": _publish_requests(user), "held_actions": _held_actions(user),
                 "alerts": _open_alerts(), "exports": _finished_exports(user)}
    return {kind: rows.values("pk").explain() for kind, rows in querysets.items()}

