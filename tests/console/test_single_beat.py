"""One beat, however many are started (console/settings.py: RedBeat's lock in Redis): two real
`celery beat` processes on the profile's Redis; exactly one sends the periodic tasks, and when it
dies the other takes over, without any periodic task sent twice."""
from __future__ import annotations

import os
import re
import signal
import subprocess
import time
from datetime import datetime
from pathlib import Path

import pytest
import redis
from django.conf import settings

from tests.support import wait_until

ROOT = Path(__file__).resolve().parents[2]
LOCK_SECONDS = 3
SENT = re.compile(r"\[(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}): INFO/MainProcess\] Scheduler: Sending due task (\S+)")


class Beat:
    def __init__(self, name: str, home: Path, env: dict[str, str]):
        self.log_path = home / f"{name}.log"
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(
                [str(ROOT / ".venv" / "bin" / "python"), "-m", "celery", "-A", "console", "beat", "--loglevel", "INFO"],
                env=env, cwd=home, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def sent(self, entry: str | None = None) -> list[datetime]:
        return [datetime.strptime(moment, "%Y-%m-%d %H:%M:%S,%f") for moment, name in SENT.findall(self.log())
                if entry is None or name == entry]

    def holds_the_lock(self) -> bool:
        return "beat: Acquired lock" in self.log()

    def kill(self, sig=signal.SIGKILL) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, sig)
            self.proc.wait(timeout=30)


@pytest.fixture
def beats(tmp_path):
    redis_url = settings.REDIS_URL.rsplit("/", 1)[0] + "/6"  # a database of its own: no worker takes these
    client = redis.Redis.from_url(redis_url)
    client.flushdb()
    env = {**os.environ, "REDIS_URL": redis_url, "PYTHONPATH": str(ROOT), "GAVEL_BEAT_LOCK_SECONDS": str(LOCK_SECONDS),
           "GAVEL_INGEST_REQUEUE_EVERY_SECONDS": "1"}
    started: list[Beat] = []

    def start(name: str) -> Beat:
        started.append(beat := Beat(name, tmp_path, env))
        return beat

    start.queued = lambda: client.llen("celery")
    try:
        yield start
    finally:
        for beat in started:
            beat.kill()
        client.flushdb()


def test_a_second_beat_schedules_nothing_until_the_first_dies_then_takes_over(beats):
    first = beats("first")
    wait_until(first.holds_the_lock, timeout=60, message="the first beat to take the lock")
    second = beats("second")
    wait_until(lambda: "beat: Starting..." in second.log(), timeout=60, message="the second beat to start")
    wait_until(lambda: len(first.sent("requeue-stalled-log-batches")) >= 4, timeout=30,
               message="the first beat to send the every-second task a few times")
    assert second.sent() == [] and not second.holds_the_lock()

    first.kill()  # dies holding the lock: it lapses after LOCK_SECONDS
    died = time.monotonic()
    wait_until(second.holds_the_lock, timeout=LOCK_SECONDS + 15, message="the second beat to take over")
    assert time.monotonic() - died < LOCK_SECONDS + 10
    wait_until(lambda: len(second.sent("requeue-stalled-log-batches")) >= 3, timeout=30,
               message="the second beat to send the every-second task")
    second.kill(signal.SIGTERM)

    # Every task the second beat says it sent is on the queue once; so is every one the first says it
    # sent but perhaps its last, which SIGKILL may cut between the log line and Redis. And the
    # every-second task never went out twice within its second, across both beats.
    from_first = beats.queued() - len(second.sent())
    assert len(first.sent()) - 1 <= from_first <= len(first.sent())
    moments = sorted(first.sent("requeue-stalled-log-batches") + second.sent("requeue-stalled-log-batches"))
    gaps = [(b - a).total_seconds() for a, b in zip(moments, moments[1:])]
    assert min(gaps) >= 0.8, gaps
    assert max(first.sent()) < min(second.sent())
