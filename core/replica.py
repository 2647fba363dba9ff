"""Where reads that may be a few seconds old go: the read replica while it is fresh enough, else the primary.

Only the searches, the charts and exports ask (`read(build)` / `reads()`), and they name the alias
themselves (`.using(alias)`), so a page that shows what its user just wrote never reads the replica,
and every write goes to the primary. The replica is the `replica` database, configured only when
GAVEL_REPLICA_DATABASE_URL is set (console/settings.py).

Its lag is measured on the replica itself, at most every GAVEL_REPLICA_CHECK_SECONDS per process: zero
when it has replayed all the WAL it received (an idle primary sends nothing, so the time of the last
replayed transaction says nothing then), else the time since the last transaction it replayed. Over
GAVEL_REPLICA_MAX_LAG_SECONDS, not streaming from the primary, or unreachable: the primary.
"""
from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Callable, TypeVar

from django.conf import settings
from django.db import DEFAULT_DB_ALIAS, InterfaceError, OperationalError, connections
from django.utils import timezone

log = logging.getLogger(__name__)
REPLICA = "replica"
T = TypeVar("T")

# On the replica: still a standby?, streaming from the primary?, seconds behind.
LAG_SQL = """
SELECT pg_is_in_recovery(),
       EXISTS (SELECT 1 FROM pg_stat_wal_receiver WHERE status = 'streaming'),
       CASE WHEN NOT pg_is_in_recovery() OR pg_last_wal_receive_lsn() = pg_last_wal_replay_lsn() THEN 0.0
            ELSE extract(epoch FROM clock_timestamp() - pg_last_xact_replay_timestamp())::float END
"""


@dataclass(frozen=True)
class Reads:
    """The database chosen for a read, and why."""

    alias: str
    lag: float | None = None  # seconds the replica is behind, when measured
    reason: str = ""  # why the primary, when a replica is configured but not used
    measured_at: datetime = field(default_factory=timezone.now)

    @property
    def from_replica(self) -> bool:
        return self.alias != DEFAULT_DB_ALIAS

    @property
    def as_of(self) -> datetime:
        """The moment the data read is complete up to: now on the primary, earlier on a lagging replica."""
        if not self.from_replica:
            return timezone.now()
        return self.measured_at - timedelta(seconds=self.lag or 0.0)

    @property
    def age(self) -> str:
        """How old the data is, in words, for the page that shows it."""
        seconds = (timezone.now() - self.as_of).total_seconds()
        return "less than a second" if seconds < 1 else f"{seconds:.0f} s"


def configured() -> bool:
    return REPLICA in settings.DATABASES


def measure() -> Reads:
    """The replica's state now, uncached."""
    try:
        with connections[REPLICA].cursor() as cursor:
            cursor.execute(LAG_SQL)
            standby, streaming, lag = cursor.fetchone()
    except (OperationalError, InterfaceError) as exc:
        connections[REPLICA].close()
        log.warning("the read replica is unreachable, reading from the primary: %s", exc)
        return Reads(DEFAULT_DB_ALIAS, reason="the read replica is unreachable")
    if standby and not streaming:
        return Reads(DEFAULT_DB_ALIAS, reason="the read replica is not streaming from the primary")
    if lag is None or lag > settings.GAVEL_REPLICA_MAX_LAG_SECONDS:
        behind = "an unknown time" if lag is None else f"{lag:.0f} s"
        return Reads(DEFAULT_DB_ALIAS, lag=lag,
                     reason=f"the read replica is {behind} behind (more than {settings.GAVEL_REPLICA_MAX_LAG_SECONDS:g} s)")
    return Reads(REPLICA, lag=max(lag, 0.0))


_lock = threading.Lock()
_last: tuple[float, Reads] | None = None


def forget() -> None:
    """Measure again at the next read (tests, and after a replica failed mid-read)."""
    global _last
    with _lock:
        _last = None


def reads(as_of: datetime | None = None) -> Reads:
    """The database for a read. With `as_of`, the replica only if it holds everything stored by then
    (an export pinned to a moment), measured now rather than cached."""
    global _last
    if not configured():
        return Reads(DEFAULT_DB_ALIAS)
    if as_of is not None:
        chosen = measure()
        if chosen.from_replica and chosen.as_of < as_of:
            return Reads(DEFAULT_DB_ALIAS, lag=chosen.lag, reason="the read replica has not yet replayed the export's moment")
        return chosen
    with _lock:
        if _last is not None and time.monotonic() - _last[0] < settings.GAVEL_REPLICA_CHECK_SECONDS:
            return _last[1]
    return _remember(measure())


def _remember(chosen: Reads) -> Reads:
    global _last
    with _lock:
        _last = (time.monotonic(), chosen)
    return chosen


def read(build: Callable[[Reads], T], as_of: datetime | None = None) -> tuple[Reads, T]:
    """`build(reads)` on the chosen database; when the replica fails mid-read (stopped, or a query
    cancelled by replay), the same again on the primary: a reader never sees an error for it."""
    chosen = reads(as_of)
    if not chosen.from_replica:
        return chosen, build(chosen)
    try:
        return chosen, build(chosen)
    except (OperationalError, InterfaceError) as exc:
        log.warning("the read replica failed mid-read, reading from the primary: %s", exc)
        connections[REPLICA].close()
        primary = Reads(DEFAULT_DB_ALIAS, reason="the read replica failed during this read")
        _remember(primary)
        return primary, build(primary)


class PrimaryForWrites:
    """The database router (DATABASE_ROUTERS): every write goes to the primary, even of a row read
    from the replica; rows from either may be related; migrations never run on the replica."""

    def db_for_write(self, model, **hints):
        instance = hints.get("instance")
        db = instance._state.db if instance is not None else None
        return db if db not in (None, REPLICA) else DEFAULT_DB_ALIAS  # a row of a scratch database stays there

    def allow_relation(self, obj1, obj2, **hints):
        # No opinion on other databases (a test's scratch one): Django then relates rows of one database.
        return True if {obj1._state.db, obj2._state.db} <= {DEFAULT_DB_ALIAS, REPLICA, None} else None

    def allow_migrate(self, db, app_label, **hints):
        return db != REPLICA  # a standby is read-only; any other database (a test's scratch one) migrates
