"""The Celery app: broker is Redis (REDIS_URL), tasks are found in each app's tasks.py.

And its one beat (CELERY_BEAT_SCHEDULER = SingleBeat): RedBeat's scheduler, whose schedule and lock
live in Redis, kept alive through a Redis outage.

RedBeat takes the lock when beat starts (a second beat waits there, sending nothing) and renews it
on every tick; started while Redis is down, or ticking while it is, it would end beat. Here beat
waits for Redis and sends nothing meanwhile: the broker is that same Redis, so nothing could be sent
anyway. When Redis is back, the lock is renewed if it is still this beat's, or waited for again like
at start (when it lapsed meanwhile, or was never taken), so two beats never send side by side.
"""
import logging
import os
import time

import redis
from celery import Celery
from redbeat import RedBeatScheduler
from redbeat.schedulers import LUA_EXTEND_TO_SCRIPT, get_redis

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "console.settings")

app = Celery("gavel")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()

log = logging.getLogger(__name__)
RETRY_SECONDS = 1.0
UNREACHABLE = (redis.ConnectionError, redis.TimeoutError)


class SingleBeat(RedBeatScheduler):
    def setup_schedule(self):
        while True:
            try:
                return super().setup_schedule()
            except UNREACHABLE as exc:
                log.warning("beat: Redis is unreachable, waiting for it to load the schedule: %s", exc)
                time.sleep(RETRY_SECONDS)

    def hold_the_lock(self) -> None:
        """What RedBeat does when beat starts: wait until the lock is free, then take it."""
        client = get_redis(self.app)
        lock = client.lock(self.lock_key, timeout=self.lock_timeout, sleep=self.max_interval)
        lock.lua_extend = client.register_script(LUA_EXTEND_TO_SCRIPT)
        lock.acquire()
        log.info("beat: Acquired lock")
        self.lock = lock

    def tick(self, *args, **kwargs):
        try:
            if self.lock_key and self.lock is None:  # Redis was down when beat started
                self.hold_the_lock()
            return super().tick(*args, **kwargs)
        except UNREACHABLE as exc:
            log.warning("beat: Redis is unreachable, sending nothing until it is back: %s", exc)
            return RETRY_SECONDS
        except redis.exceptions.LockError:
            log.warning("beat: the lock lapsed while Redis was away; waiting to hold it again")
            self.lock = None
            return 0
