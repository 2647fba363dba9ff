"""Pages of decisions that stay fast at ten million rows.

Counting every match of a broad search means reading every match; past a few thousand
nobody needs the exact figure on screen (the export says it exactly), so the page counts
up to COUNT_LIMIT and says "more than" beyond it.
"""
from functools import cached_property

from django.core.paginator import Paginator

COUNT_LIMIT = 10_000


class CappedPaginator(Paginator):
    @cached_property
    def count(self) -> int:
        return self.object_list[: COUNT_LIMIT + 1].count()

    @property
    def capped(self) -> bool:
        """True when there are more matches than were counted."""
        return self.count > COUNT_LIMIT
