"""Picking a page of the activity log: the keys of its entries, newest first, from each event table.

log() reads a union of every event table, and pghistory orders each table by id inside that union,
so Postgres sorted every entry to find the newest 50: 392 ms at 1.1 million entries, and growing
with the log. Here each table hands over only its newest, by its (pgh_created_at, pgh_id) index,
and Postgres sorts those, in one query. A page reads at most `offset + 50` keys a table, whatever
the log's size.

Counting stops past COUNT_LIMIT, as the audit search's does: the page then says "more than", and
its last page leads on to the entries older than its last one (`older_than`), counted again.
"""
from datetime import datetime
from functools import cached_property
from typing import NamedTuple

from django.core.paginator import Paginator
from django.db.models import Q, QuerySet, Value
from django.db.models.lookups import Exact, LessThan
from django.db.models.query import EmptyQuerySet

COUNT_LIMIT = 10_000
NEWEST = ("-pgh_created_at", "-label", "-pgh_id")  # ties: the model, then the id, as entries.log()


class Keys:
    """(event model label, event id) of each entry in `tables`, newest first (time, then model,
    then id): a sequence a Paginator pages. `tables` holds one queryset per event table, filtered.
    Each read is one query: the tables' parts are joined with UNION ALL."""

    def __init__(self, tables: list[QuerySet]):
        # A table a filter rules out (`none()`) is left out: a union skips it anyway.
        self.tables = [table for table in tables if not isinstance(table, EmptyQuerySet)]

    def count(self, limit: int) -> int:
        """How many entries there are, up to `limit`."""
        if not self.tables:
            return 0
        parts = [table.order_by().values_list("pgh_id")[:limit] for table in self.tables]
        return min(parts[0].union(*parts[1:], all=True).count(), limit)  # one part: itself

    def __getitem__(self, wanted: slice) -> list[tuple[str, int]]:
        if not isinstance(wanted, slice) or wanted.step is not None or wanted.stop is None:
            raise TypeError("the activity log's keys are read a page (a slice with an end) at a time")
        if not self.tables or wanted.stop <= (wanted.start or 0):  # an empty log's page asks for [0:0]
            return []
        if len(self.tables) == 1:  # no union: a sliced part cannot be ordered again
            rows = newest(self.tables[0])[wanted]
        else:
            parts = [newest(table)[:wanted.stop] for table in self.tables]
            rows = parts[0].union(*parts[1:], all=True).order_by(*NEWEST)[wanted]
        return [(label, pgh_id) for _at, label, pgh_id in rows]


class Entry(NamedTuple):
    """Where one entry stands in the log's order: its time, event model label and id."""
    at: datetime
    label: str
    pgh_id: int


def older_than(table: QuerySet, entry: Entry) -> QuerySet:
    """The table's entries after `entry` in the log's order (NEWEST): older, or as old and after it
    by model label, then id. Postgres compares the labels, as it orders them; the first filter is
    the one its index starts from."""
    label, entry_label = Value(table.model._meta.label), Value(entry.label)
    return table.filter(pgh_created_at__lte=entry.at).filter(
        Q(pgh_created_at__lt=entry.at) | Q(LessThan(label, entry_label))
        | Q(Exact(label, entry_label), pgh_id__lt=entry.pgh_id))


def newest(table: QuerySet) -> QuerySet:
    """The table's (time, event model label, id) rows, newest first: read backwards along its
    (pgh_created_at, pgh_id) index (the label is the same on every row)."""
    label = Value(table.model._meta.label)
    return table.annotate(label=label).values_list("pgh_created_at", "label", "pgh_id").order_by(*NEWEST)


class LogPaginator(Paginator):
    """Pages of Keys, counted up to COUNT_LIMIT + 1: `capped` says there are more."""

    @cached_property
    def count(self) -> int:
        return self.object_list.count(limit=COUNT_LIMIT + 1)

    @property
    def capped(self) -> bool:
        return self.count > COUNT_LIMIT
