"""The one beat (CELERY_BEAT_SCHEDULER): RedBeat's scheduler, whose schedule and lock live in Redis,
kept alive through a Redis outage.

RedBeat takes the lock when beat starts (a second beat waits there, sending nothing) and renews it
on every tick; a tick that cannot reach Redis would end beat. Here it sends nothing and tries again
shortly: the broker is that same Redis, so nothing could be sent anyway. When Redis is back, the
lock is renewed if it is still this beat's, or waited for again like at start if it lapsed meanwhile,
so two beats never send side by side.
"""
from __future__ import annotations

import logging

import redis
from redbeat import RedBeatScheduler

log = logging.getLogger(__name__)
RETRY_SECONDS = 1.0


class SingleBeat(RedBeatScheduler):
    def tick(self, *args, **kwargs):
        try:
            return super().tick(*args, **kwargs)
        except (redis.ConnectionError, redis.TimeoutError) as exc:
            log.warning("beat: Redis is unreachable, sending nothing until it is back: %s", exc)
            return RETRY_SECONDS
        except redis.exceptions.LockError:
            log.warning("beat: the lock lapsed while Redis was away; waiting to hold it again")
            self.lock.acquire()  # blocks, polling every max_interval, like a second beat at start
            log.info("beat: Acquired lock")
            return 0
