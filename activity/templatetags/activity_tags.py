from django import template

from activity.entries import shown as shown_value

register = template.Library()


@register.filter
def shown(value, key=""):
    """A before or after value as text (JSON for lists and objects, words where the field `key` says
    how, e.g. "75 %"); the template escapes it."""
    return shown_value(value, key)
