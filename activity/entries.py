"""Reading the activity log: each entry as who, when, what, and every field's before -> after.

The page and the API both pick a page of keys through ActivityFilter (activity/paging.py), and show
the `rows()` of the page's entries, `built()` from its keys.
"""
import json
from collections import defaultdict
from dataclasses import dataclass, field

from django.apps import apps
from django.contrib.auth.models import Group, User
from django.db import models

from core.display.times import is_iso_time, utc_words
from rollout.models import CanarySetting, KillSwitchChange

from .models import ActivityEntry
from .tracking import tracked_by_event_label

CREATED = ("create", "add")
REMOVED = ("delete", "remove")
# A foreign key to these is shown with the name, not only the id.
NAMED = {"user_id": User, "group_id": Group, "approved_by_id": User, "requested_by_id": User,
         "decided_by_id": User, "changed_by_id": User, "author_id": User, "created_by_id": User,
         "reviewer_id": User, "actor_id": User, "expired_by_id": User, "revoked_by_id": User,
         "decommissioned_by_id": User}


# Rows that are never changed, each a new state of one thing: a created row is shown as the change
# from the state before it (same policy and environment), "75 % -> 50 %", not as a new object.
SUCCESSIVE = {CanarySetting: ("policy_id", "environment_id"), KillSwitchChange: ("environment_id",)}
# Kept on each row but not a change of state: who (the entry's actor) and when.
NOT_STATE = {"id", "created_at", "changed_by_id"}
ENFORCEMENT_POINT_GROUP = "enforcement_point"  # console/roles.py ENFORCEMENT_POINT
# Each role's label by its group's name ("security_admin": "Security admin"). The role table is the
# console's (console/roles.py), a layer above this package, so the console fills this when it starts.
ROLE_LABELS: dict[str, str] = {}


@dataclass
class Change:
    field: str
    before: object
    after: object
    label: str = ""  # for people: the model field's verbose name, e.g. "enforce percentage"


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
    """Every change, newest first (events of one transaction share a time; the model, then the id
    break ties), as activity/paging.py pages it."""
    return ActivityEntry.objects.order_by("-pgh_created_at", "-pgh_model", "-pgh_id")


def built(page_keys) -> list:
    """The entries of these keys, in their order: each event model's read in one query, by id."""
    wanted = defaultdict(list)
    for label, pgh_id in page_keys:
        wanted[label].append(pgh_id)
    found = {}
    for label, ids in wanted.items():
        for entry in log().across(apps.get_model(label)).filter(pgh_id__in=ids):
            found[(label, entry.pgh_id)] = entry
    return [found[key] for key in map(tuple, page_keys) if key in found]


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
    ids = {e.user_id for e in entries if e.user_id}
    actors = dict(User.objects.filter(pk__in=ids).values_list("pk", "username"))
    machines = set(User.objects.filter(pk__in=ids, groups__name=ENFORCEMENT_POINT_GROUP).values_list("pk", flat=True))
    result = []
    for entry in entries:
        tracked = tracked_by_event_label(entry.pgh_model)
        model = tracked.model if tracked else None
        changes, action = changes_of(entry), entry.pgh_label
        if model in SUCCESSIVE and action in CREATED:
            changes, action = _since_previous(model, entry), "change"
        actor = actors.get(entry.user_id, "")
        result.append(Row(
            id=entry.pgh_slug, at=entry.pgh_created_at,
            actor=actor,
            action=action, model=tracked.key if tracked else entry.pgh_model,
            model_label=tracked.label if tracked else entry.pgh_model,
            object_id=entry.pgh_obj_id or "", object=_describe(entry.pgh_data or {}),
            via=_via(entry.pgh_context),
            changes=changes,
            actor_label=(f"{actor} (enforcement point)" if entry.user_id in machines else actor)
            or _automation(entry.pgh_context),
        ))
        _label_fields(result[-1], model)
    _name_foreign_keys(result)
    _name_objects(result, {tracked_by_event_label(e.pgh_model) for e in entries} - {None}, entries)
    return result


def _since_previous(model, entry) -> list[Change]:
    """A new state of a never-changed row, as what changed since the one before it."""
    data = {k: v for k, v in (entry.pgh_data or {}).items() if not k.startswith("pgh_")}
    keys = SUCCESSIVE[model]
    previous = (model.objects.filter(**{k: data.get(k) for k in keys}, pk__lt=entry.pgh_obj_id)
                .order_by("-pk").values().first())
    changes = []
    for key, after in sorted(data.items()):
        if key in NOT_STATE or key in keys:
            continue
        before = previous.get(key) if previous else None
        if previous is None or before != after or key == "reason":
            changes.append(Change(key, None if key == "reason" else before, after))
    return changes


def _label_fields(row: Row, model) -> None:
    names = {f.attname: str(f.verbose_name) for f in model._meta.concrete_fields} if model else {}
    for change in row.changes:
        label = names.get(change.field, change.field.removesuffix("_id").replace("_", " "))
        change.label = "role" if label == "group" else label


def _in_words(key: str, value):
    if is_iso_time(value):  # how the log stores a time, read as "2026-11-30 06:30:47 UTC"
        return utc_words(value)
    if key.endswith("percentage") and isinstance(value, int):
        return f"{value} %"
    if key == "engaged" and isinstance(value, bool):
        return "engaged" if value else "released"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return ", ".join(value) if value else "none"
    return value


def _name_objects(result: list[Row], tracked_models, entries) -> None:
    """policy_id 1 -> "budget": every other foreign key named by its object, a query per model."""
    fks = {}
    for tracked in tracked_models:
        for f in tracked.model._meta.concrete_fields:
            if isinstance(f, models.ForeignKey) and f.attname not in NAMED:
                fks[f.attname] = f.related_model
    wanted = {}
    for row in result:
        for change in row.changes:
            if change.field in fks:
                wanted.setdefault(fks[change.field], set()).update(
                    v for v in (change.before, change.after) if isinstance(v, int))
    for entry in entries:  # what each rollout or kill-switch row is about, in the same queries
        data = entry.pgh_data or {}
        for field in ("environment_id", "policy_id"):
            if field in fks and isinstance(data.get(field), int):
                wanted.setdefault(fks[field], set()).add(data[field])
    names = {(model, obj.pk): str(obj) for model, ids in wanted.items() for obj in model.objects.filter(pk__in=ids)}
    for row in result:
        for change in row.changes:
            model = fks.get(change.field)
            if model:
                change.before = names.get((model, change.before), change.before)
                change.after = names.get((model, change.after), change.after)
    # What a successive row is about: "budget in dev".
    for row, entry in zip(result, entries):
        data = entry.pgh_data or {}
        if not row.object and data.get("environment_id"):
            env = _named(names, fks.get("environment_id"), data["environment_id"])
            policy = _named(names, fks.get("policy_id"), data.get("policy_id")) if data.get("policy_id") else None
            row.object = f"{policy} in {env}" if policy else f"{env}"


def _named(names, model, pk):
    """An object's name from the page's one query per model; "#7" once it is gone."""
    if model is None or pk is None:
        return pk
    return names.get((model, pk), f"#{pk}")


def _via(context) -> str:
    context = context if isinstance(context, dict) else {}
    if context.get("url"):
        return context["url"]
    return f"task {context['task']}" if context.get("task") else ""


def _automation(context) -> str:
    """No user: Gavel itself, named by the part that made the change when it says (pghistory context
    `automation`, e.g. export retention)."""
    context = context if isinstance(context, dict) else {}
    if context.get("automation"):
        return f"Gavel ({context['automation']})"
    if context.get("task"):
        return f"Gavel's worker ({context['task']})"
    if context.get("url"):
        return "Gavel (a request without a user)"
    return "Gavel (a management command or SQL shell)"


def _name_foreign_keys(result: list[Row]) -> None:
    """approved_by_id 7 -> "dana (#7)", group_id 3 -> "Reviewer (#3)": two queries for a whole page."""
    wanted = {}
    for row in result:
        for change in row.changes:
            if change.field in NAMED:
                wanted.setdefault(NAMED[change.field], set()).update(
                    v for v in (change.before, change.after) if isinstance(v, int))
    names = {}
    for model, ids in wanted.items():
        for obj in model.objects.filter(pk__in=ids):
            name = ROLE_LABELS.get(obj.name, obj.name) if model is Group else obj
            names[(model, obj.pk)] = f"{name} (#{obj.pk})"
    for row in result:
        for change in row.changes:
            model = NAMED.get(change.field)
            if model:
                change.before = names.get((model, change.before), change.before)
                change.after = names.get((model, change.after), change.after)


def shown(value, key: str = "") -> str:
    """A value as text for the page, in words where its field says how ("75 %"); the template escapes it."""
    value = _in_words(key, value)
    if value is None:
        return "—"
    if isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False, sort_keys=True)
