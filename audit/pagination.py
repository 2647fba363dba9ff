"""Pages of decisions that stay fast at ten million rows.

Two habits keep a broad search cheap. It counts at most COUNT_LIMIT matches and says "more
than" beyond that (the export gives the exact number). And because the list is newest first,
it looks in the newest day, then week, then month before the whole table: a search that
matches many decisions fills its page (and passes the count limit) within the first window
and never reads the rest, while a rare match costs little in every window. Counting ignores the
order: Postgres may stop at the limit in whatever order its index hands the matches over, where
"the newest 10,001" would make it find and sort every match in the window first. A search that
can match only a handful of decisions (a decision id) skips the windows: it would look in each
for nothing.

Past the counted pages, the last one reads on after its last decision (`Place`, `after`): the
search again, counted afresh, at about the cost of its first page.
"""
import re
from datetime import UTC, datetime, timedelta
from functools import cached_property
from typing import NamedTuple

from django.core.paginator import Paginator
from django.utils import timezone

COUNT_LIMIT = 10_000
WINDOWS = (timedelta(days=1), timedelta(days=7), timedelta(days=31), None)


class Place(NamedTuple):
    """A decision's place in the newest-first list (time, then row id), written into the Older link
    as "2026-12-03T14:24:15.123456Z,4711": Postgres keeps microseconds, and so does the text."""
    at: datetime
    id: int

    @classmethod
    def of(cls, decision) -> "Place":
        return cls(decision.timestamp, decision.pk)

    @classmethod
    def parse(cls, text: str) -> "Place":
        """Raises ValueError for anything else than the text __str__ writes."""
        at, _, row = text.strip().partition(",")
        if not TIME.fullmatch(at):
            raise ValueError("has no time such as 2026-12-03T14:24:15.123456Z before its comma")
        try:
            moment = datetime.fromisoformat(at.removesuffix("Z")).replace(tzinfo=UTC)
        except ValueError:
            raise ValueError(f"names a time that does not exist: {at}") from None
        if not (row.isascii() and row.isdigit() and len(row) <= 19 and int(row) < 2**63):  # a bigint
            raise ValueError("has no row id (a whole number below 2^63) after its comma")
        return cls(moment, int(row))

    def __str__(self) -> str:
        # isoformat pads the year to four digits, where strftime leaves a year before 1000 short.
        return f"{self.at.astimezone(UTC).replace(tzinfo=None).isoformat(timespec='microseconds')}Z,{self.id}"


TIME = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z", re.ASCII)


def after(decisions, place: Place):
    """The decisions after `place` in the newest-first order: older, or as old with a lower row id.
    The first filter bounds the time indexes' ranges; the second only looks at ties."""
    return decisions.filter(timestamp__lte=place.at).exclude(timestamp=place.at, id__gte=place.id)


class CappedPaginator(Paginator):
    """For querysets of decisions ordered newest first; `few`: the search matches a handful at most."""

    def __init__(self, object_list, per_page, few: bool = False, **kwargs):
        super().__init__(object_list, per_page, **kwargs)
        self.windows = WINDOWS[-1:] if few else WINDOWS

    @cached_property
    def now(self):
        """One clock for the count and the page: each window means the same rows to both."""
        return timezone.now()

    def windowed(self, window):
        if window is None:
            return self.object_list
        return self.object_list.filter(timestamp__gte=self.now - window)

    def counted(self, window, newer, limit: int) -> int:
        """How many matches the window holds beyond the `newer` one (counted already), up to `limit`,
        in no particular order."""
        rows = self.windowed(window)
        if newer is not None:
            rows = rows.filter(timestamp__lt=self.now - newer)
        return rows.order_by()[:limit].count()

    @cached_property
    def count(self) -> int:
        # Each window's matches, up to the limit: the page picks its window from these. A wider
        # window counts only what the narrower one did not hold: a search falling through to the
        # month read the day's and the week's index entries twice over.
        self.found_in, found, newer = {}, 0, None
        for window in self.windows:
            found += self.counted(window, newer, COUNT_LIMIT + 1 - found)
            self.found_in[window] = found
            if found > COUNT_LIMIT or window is None:
                return found
            newer = window
        raise AssertionError("the last window is the whole search")

    @property
    def capped(self) -> bool:
        """True when there are more matches than were counted."""
        return self.count > COUNT_LIMIT

    def page(self, number):
        number = self.validate_number(number)
        bottom = (number - 1) * self.per_page
        top = min(bottom + self.per_page, self.count)
        # The newest window that holds this page holds it in the same order. Counting found how many
        # each window holds (up to the limit, which top never passes), so nothing is counted again: a
        # search with one old match counted every window twice. Windows it did not reach are never
        # needed: the last one it counted holds more than the limit, or is the whole search.
        for window in self.windows:
            if window is None or self.found_in[window] >= top:
                return self._get_page(self.windowed(window)[bottom:top], number, self)
        raise AssertionError("the last window is the whole search")
