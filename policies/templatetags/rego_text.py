"""Source and messages as people read them: numbered source lines, and backtick-quoted names
(as OPA and the lint pass write them) shown as code instead of raw backticks."""
import re

from django import template
from django.utils.html import escape
from django.utils.safestring import mark_safe

register = template.Library()

TICKS = re.compile(r"`([^`]+)`")


@register.filter
def source_lines(source: str) -> list[str]:
    """The lines of a source, for a numbered listing (a trailing newline adds no empty line)."""
    text = (source or "").replace("\r\n", "\n")
    return text.removesuffix("\n").split("\n") if text else []


@register.filter
def lines_from(source: str, first_row) -> list[tuple[int, str]]:
    """A piece of a source (one rule) as (row, line) pairs, its rows counted from `first_row`."""
    return [(int(first_row or 1) + i, line) for i, line in enumerate(source_lines(source))]


@register.filter
def ticks(message) -> str:
    """`message` escaped, with each `quoted` name as <code>."""
    return mark_safe(TICKS.sub(lambda m: f"<code>{m.group(1)}</code>", escape(str(message))))
