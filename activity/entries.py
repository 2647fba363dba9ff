"""Reading the activity log: each entry as who, when, what, and every field's before -> after.

The page and the API both list `log()` through ActivityFilter and show `rows()`.
"""
import json
from dataclasses import dataclass, field

from django.contrib.auth.models import Group, User

from .models import ActivityEntry
from .tracking import tracked_by_event_label

CREATED = ("create", "add")
REMOVED = ("delete", "remove")
# A foreign key to these is shown with the name, not only the id.
NAMED = {"user_id": User, "group_id": Group, "approved_by_id": User, "requested_by_id": User,
         "decided_by_id": User, "changed_by_id": User, "author_id": User, "created_by_id": User,
         "reviewer_id": User, "actor_id": User, "expired_by_id": User, "revoked_by_id": User,
         "decommissioned_by_id": User}


@dataclass
class Change:
    field: str
    before: object
    after: object


@dataclass
class Row:
    id: str
    at: object
    actor: str
    action: str
    model: str  # the filter key, e.g. "policy"
    model_label: str
    object_id: str
    object: str
    via: str  # the page or API path, or the worker's task
    changes: list[Change] = field(default_factory=list)
    actor_label: str = ""  # the username, or which part of Gavel made the change: "Gavel (retention)"


def log():
    """Every change, newest first (events of one transaction share a time; the id breaks ties)."""
    return ActivityEntry.objects.order_by("-pgh_created_at", "-pgh_slug")


def changes_of(entry) -> list[Change]:
    data = {key: value for key, value in (entry.pgh_data or {}).items() if not key.startswith("pgh_")}
    if entry.pgh_label in CREATED + REMOVED:
        # Of a whole row, the fields with a value (the id is in the entry's "what" already).
        data = {key: value for key, value in data.items() if key != "id" and value not in (None, "", [], {})}
    if entry.pgh_label in CREATED:
        return [Change(key, None, value) for key, value in sorted(data.items())]
    if entry.pgh_label in REMOVED:
        return [Change(key, value, None) for key, value in sorted(data.items())]
    if entry.pgh_diff is None:  # the object predates the log: its earlier values are unknown
        return [Change(key, None, value) for key, value in sorted(data.items())]
    return [Change(key, before, after) for key, (before, after) in sorted(entry.pgh_diff.items())]


def _describe(data: dict) -> str:
    for key in ("name", "username", "decision_id"):
        if data.get(key):
            return str(data[key])
    if "number" in data:
        return f"v{data['number']}"
    return ""


def rows(entries) -> list[Row]:
    entries = list(entries)
    # The actor is a user id in each entry's context; one query names them all.
    actors = dict(User.objects.filter(pk__in={e.user_id for e in entries if e.user_id}).values_list("pk", "username"))
    result = []
    for entry in entries:
        tracked = tracked_by_event_label(entry.pgh_model)
        result.append(Row(
            id=entry.pgh_slug, at=entry.pgh_created_at,
            actor=actors.get(entry.user_id, ""),
            action=entry.pgh_label, model=tracked.key if tracked else entry.pgh_model,
            model_label=tracked.label if tracked else entry.pgh_model,
            object_id=entry.pgh_obj_id or "", object=_describe(entry.pgh_data or {}),
            via=_via(entry.pgh_context),
            changes=changes_of(entry),
            actor_label=actors.get(entry.user_id) or _automation(entry.pgh_context),
        ))
    _name_foreign_keys(result)
    return result


def _via(context) -> str:
    context = context if isinstance(context, dict) else {}
    if context.get("url"):
        return context["url"]
    return f"task {context['task']}" if context.get("task") else ""


def _automation(context) -> str:
    """No user: Gavel itself, named by the part that made the change when it says (pghistory context
    `automation`, e.g. export retention)."""
    context = context if isinstance(context, dict) else {}
    return f"Gavel ({context['automation']})" if context.get("automation") else "Gavel"


def _name_foreign_keys(result: list[Row]) -> None:
    """approved_by_id 7 -> "dana (#7)": two queries for a whole page."""
    wanted = {}
    for row in result:
        for change in row.changes:
            if change.field in NAMED:
                wanted.setdefault(NAMED[change.field], set()).update(
                    v for v in (change.before, change.after) if isinstance(v, int))
    names = {}
    for model, ids in wanted.items():
        for obj in model.objects.filter(pk__in=ids):
            names[(model, obj.pk)] = f"{obj} (#{obj.pk})"
    for row in result:
        for change in row.changes:
            model = NAMED.get(change.field)
            if model:
                change.before = names.get((model, change.before), change.before)
                change.after = names.get((model, change.after), change.after)


def shown(value) -> str:
    """A value as text for the page (the template escapes it)."""
    if value is None:
        return "—"
    if isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False, sort_keys=True)
