"""How a model joins the activity log (django-pghistory underneath).

`track(Model)` in activity/models.py is all it takes, then `manage.py makemigrations activity`:
Postgres triggers on the model's table copy every insert, update and delete into an event table
of this app, with the request's user and URL (pghistory's middleware, which also sees users that
DRF authenticates by token inside the view). The triggers live on a proxy model here, so the
migrations are all in this app and never in the tracked model's own.

Event tables are append-only in Postgres itself: a trigger refuses UPDATE and DELETE on every
row, and another refuses TRUNCATE (unless the session sets gavel.activity_truncate=allow, which
only the test suite's database flush does).
"""
import sys
from dataclasses import dataclass

import pghistory
import pgtrigger
from django.db import models
from django.db.models import F
from django.db.models.fields.json import KeyTransform

MODELS_MODULE = "activity.models"

# Statement-level, because TRUNCATE never fires row triggers.
REFUSE_TRUNCATE = pgtrigger.Trigger(
    name="refuse_truncate",
    when=pgtrigger.Before,
    operation=pgtrigger.Truncate,
    level=pgtrigger.Statement,
    func="""
        IF current_setting('gavel.activity_truncate', true) IS DISTINCT FROM 'allow' THEN
            RAISE EXCEPTION 'the activity log is append-only: % cannot be truncated', TG_TABLE_NAME;
        END IF;
        RETURN NULL;
    """,
)


@dataclass(frozen=True)
class Tracked:
    key: str  # in URLs and filters: "policy", "user-role"
    label: str  # for people
    model: type  # the tracked model itself
    event_model: type


REGISTRY: dict[str, Tracked] = {}


def track(model, *, fields=None, exclude=None, name=None, label=None, links=False) -> Tracked:
    """Log every change to `model`. Secrets never belong in the log: for a model with a token or
    a password, list the `fields` to keep (an allowlist), so a secret column added later stays out.

    `links=True` is for a many-to-many table (user <-> group): its rows are added and removed.
    """
    name = name or model.__name__
    proxy = type(f"Tracked{name}", (model,), {
        "__module__": MODELS_MODULE,
        "Meta": type("Meta", (), {"proxy": True, "app_label": "activity"}),
    })
    if links:
        trackers = (pghistory.InsertEvent("add"), pghistory.DeleteEvent("remove"))
    else:
        trackers = (pghistory.InsertEvent("create"), pghistory.UpdateEvent("update"), pghistory.DeleteEvent("delete"))
    pghistory.track(
        *trackers,
        fields=fields,
        exclude=exclude,
        model_name=f"{name}Event",
        app_label="activity",
        append_only=True,
        # The actor and URL are stored in each event row, so they are as append-only as the change.
        context_field=pghistory.ContextJSONField(),
        # Not "events" (pghistory's default): PublishRequest.events is the publishing history.
        obj_field=pghistory.ObjForeignKey(related_name="activity_events", related_query_name="activity_events"),
        meta={"triggers": [REFUSE_TRUNCATE], "indexes": newest_first_indexes(name)},
    )(proxy)
    key = "-".join(part.lower() for part in _words(name))
    tracked = Tracked(key=key, label=label or str(model._meta.verbose_name), model=model,
                      event_model=_event_model(f"{name}Event"))
    REGISTRY[key] = tracked
    return tracked


def newest_first_indexes(name: str) -> list[models.Index]:
    """The log is read newest first, a table at a time (activity/paging.py): all of it, and by who
    made the change (the user id in each entry's context)."""
    return [models.Index(fields=["pgh_created_at", "pgh_id"], name=f"act_{name.lower()}_newest"),
            models.Index(KeyTransform("user", "pgh_context"), F("pgh_created_at"), F("pgh_id"),
                         name=f"act_{name.lower()}_actor")]


def _event_model(model_name):
    return getattr(sys.modules[MODELS_MODULE], model_name)


def _words(name):
    word = ""
    for char in name:
        if char.isupper() and word:
            yield word
            word = ""
        word += char
    if word:
        yield word


# Celery's task_prerun/task_postrun (activity/apps.py) open and close a context per task run.
_task_contexts: dict[str, pghistory.context] = {}


def enter_task_context(task_id=None, task=None, **kwargs):
    context = pghistory.context(task=task.name)
    context.__enter__()
    _task_contexts[task_id] = context


def exit_task_context(task_id=None, **kwargs):
    context = _task_contexts.pop(task_id, None)
    if context is not None:
        context.__exit__(None, None, None)


def tracked_by_event_label(event_label: str) -> Tracked | None:
    """The registry entry of an event model label, e.g. "activity.PolicyEvent"."""
    for tracked in REGISTRY.values():
        if tracked.event_model._meta.label == event_label:
            return tracked
    return None
