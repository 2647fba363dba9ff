"""Text filters for any page."""
import re

from django import template
from django.utils.html import escape
from django.utils.safestring import mark_safe

register = template.Library()


@register.filter
def breakable(value):
    """A path or a dotted name ("POST /exceptions/4/revoke/", "policies.tasks.push_publication") that may
    wrap after its separators, never inside a word: escaped, then <wbr> after each / . _ and :."""
    return mark_safe(re.sub(r"([/._:])", r"\1<wbr>", escape(value)))  # noqa: S308 (escaped first)
