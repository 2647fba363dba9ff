"""Fixtures of the fault suite: a fresh ingest pipeline per test (tests/faults/pipeline.py),
and restarts of the profile's own Postgres and Redis."""
from __future__ import annotations

import os
import signal
import time

import pytest
import redis
from django.conf import settings
from django.db import connections

from tests.faults.pipeline import FAST_SWEEP, ROOT, IngestStack
from tests.support import stack


@pytest.fixture
def ingest(transactional_db, tmp_path):
    """A fresh pipeline for one test, on the test database and a Redis database of its own
    (so no other worker of this test session takes its tasks)."""
    db = settings.DATABASES["default"]
    redis_url = settings.REDIS_URL.rsplit("/", 1)[0] + "/7"
    redis.Redis.from_url(redis_url).flushdb()
    env = {
        **os.environ,
        "DATABASE_URL": f"postgres://{db['USER']}@{db['HOST']}:{db['PORT']}/{db['NAME']}",
        "REDIS_URL": redis_url,
        "GAVEL_OPA_TOKEN": settings.GAVEL_OPA_TOKEN,
        "SECRET_KEY": settings.SECRET_KEY,
        "LOG_LEVEL": "WARNING",
        "PYTHONPATH": str(ROOT),
        **FAST_SWEEP,
    }
    pipeline = IngestStack(home=tmp_path, env=env)
    pipeline.env["OPA_URL"] = pipeline.opa_url
    try:
        pipeline.start_web()
        pipeline.start_worker()
        pipeline.start_beat()
        pipeline.start_opa()
        yield pipeline
    finally:
        for name in list(pipeline.procs):  # nothing to keep: no grace needed
            pipeline.stop(name, signal.SIGKILL)
        connections.close_all()


@pytest.fixture
def restartable(stack_services):
    """Restart the profile's own Postgres or Redis. This process's connections die with them,
    so they are closed before and after; the next query opens a new one."""
    profile = stack_services

    class Services:
        @staticmethod
        def restart_postgres(down_for: float) -> None:
            connections.close_all()
            stack.stop_postgres(profile)
            assert not stack.port_is_open(profile.postgres_port)
            time.sleep(down_for)
            stack.start_postgres(profile)
            connections.close_all()

        @staticmethod
        def restart_redis(down_for: float) -> None:
            stack.stop_redis(profile)
            assert not stack.port_is_open(profile.redis_port)
            time.sleep(down_for)
            stack.start_redis(profile)

    yield Services
    # Whatever a test did, leave both services up for the rest of the session.
    if not stack.port_is_open(profile.postgres_port):
        stack.start_postgres(profile)
    if not stack.port_is_open(profile.redis_port):
        stack.start_redis(profile)
    connections.close_all()
