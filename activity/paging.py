"""Picking a page of the activity log: the keys of its entries, newest first, from each event table.

log() reads a union of every event table, and pghistory orders each table by id inside that union,
so Postgres sorted every entry to find the newest 50: 392 ms at 1.1 million entries, and growing
with the log. Here each table hands over only its newest, by its (pgh_created_at, pgh_id) index,
and those are merged. A page reads at most `offset + 50` keys a table, whatever the log's size.

Counting stops past COUNT_LIMIT, as the audit search's does: the page then says "more than".
"""
import heapq
from functools import cached_property
from itertools import islice

from django.core.paginator import Paginator
from django.db.models import QuerySet

COUNT_LIMIT = 10_000


class Keys:
    """(event model label, event id) of each entry in `tables`, newest first (time, then model,
    then id): a sequence a Paginator pages. `tables` holds one queryset per event table, filtered."""

    def __init__(self, tables: list[QuerySet]):
        self.tables = tables

    def count(self, limit: int | None = None) -> int:
        """How many entries there are, up to `limit` when one is given."""
        total = 0
        for table in self.tables:
            if limit is None:
                total += table.count()
            elif total < limit:
                total += table.order_by()[:limit - total].count()
        return total

    def __getitem__(self, wanted: slice) -> list[tuple[str, int]]:
        if not isinstance(wanted, slice) or wanted.step is not None or wanted.stop is None:
            raise TypeError("the activity log's keys are read a page (a slice with an end) at a time")
        start, stop = wanted.start or 0, wanted.stop
        newest = [self._newest(table, stop) for table in self.tables]
        merged = heapq.merge(*newest, reverse=True)
        return [(label, pgh_id) for _at, label, pgh_id in islice(merged, start, stop)]

    @staticmethod
    def _newest(table: QuerySet, how_many: int):
        label = table.model._meta.label
        found = table.order_by("-pgh_created_at", "-pgh_id").values_list("pgh_created_at", "pgh_id")[:how_many]
        return [(at, label, pgh_id) for at, pgh_id in found]


class LogPaginator(Paginator):
    """Pages of Keys, counted up to COUNT_LIMIT + 1: `capped` says there are more."""

    @cached_property
    def count(self) -> int:
        return self.object_list.count(limit=COUNT_LIMIT + 1)

    @property
    def capped(self) -> bool:
        return self.count > COUNT_LIMIT
