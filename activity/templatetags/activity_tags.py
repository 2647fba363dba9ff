from django import template

from activity.entries import shown as shown_value

register = template.Library()


@register.filter
def shown(value):
    """A before or after value as text (JSON for lists and objects); the template escapes it."""
    return shown_value(value)
