"""The facts Gavel reads out of a decision's input (who asked, which agent, what action on
what resource, which session), so searches need not dig through JSON. This is their one
definition: the search filters, the results table, the approval queue and the decision page
all read them from here.

Inputs differ from policy to policy, so where to find the user, the agent, the action and
the resource is a list of dotted paths per fact (settings.GAVEL_DECISION_FIELDS); the first
path that holds a plain value wins. They are read from the stored input, after masking, so
a masked field is never copied out in the clear.
"""
from __future__ import annotations

from typing import Any

from django.conf import settings

MAX_LENGTH = 300


def lookup(document: Any, dotted: str) -> Any:
    """The value at a dotted path (`user.id`), or None."""
    for key in dotted.split("."):
        if not isinstance(document, dict) or key not in document:
            return None
        document = document[key]
    return document


def scalar_text(value: Any) -> str:
    if isinstance(value, bool) or value is None or isinstance(value, (dict, list)):
        return ""
    return str(value)[:MAX_LENGTH]


def first_value(document: Any, paths: list[str]) -> str:
    for path in paths:
        if text := scalar_text(lookup(document, path)):
            return text
    return ""


def user_of(document: Any) -> str:
    """Who asked, by GAVEL_FIELD_USER: the same answer as the `user` column and filter."""
    return first_value(document, settings.GAVEL_DECISION_FIELDS["user"])


def session_of(document: Any) -> tuple[str, Any] | None:
    """(path, value) of the session or conversation the input names, by GAVEL_FIELD_SESSION.
    The path comes too: sessions are not a column, so a search for the same session looks there."""
    for path in settings.GAVEL_SESSION_FIELDS:
        value = lookup(document, path)
        if scalar_text(value):  # a plain, non-empty value; not an object, list or bool
            return path, value
    return None


def extract(stored_input: Any, reasons: list[str]) -> dict[str, str]:
    """user, agent, action, resource and the full-text search text of one decision."""
    facts = {name: first_value(stored_input, paths) for name, paths in settings.GAVEL_DECISION_FIELDS.items()}
    searchable = [scalar_text(lookup(stored_input, path)) for path in settings.GAVEL_SEARCH_INPUT_FIELDS]
    facts["search_text"] = "\n".join([*reasons, *filter(None, searchable)])
    return facts
