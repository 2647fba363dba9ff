"""The cluster the drills break (scripts/cluster.py's Cluster): two gunicorn web processes behind
haproxy, two Celery workers, one beat, on the test database with a streaming replica of it and a
Redis database of their own; one OPA shipping its decision logs through the proxy."""
from __future__ import annotations

import os
import signal

import pytest
import redis
from django.conf import settings
from django.db import connections

from core.opa.client import opa_client
from tests.faults.pipeline import FAST_SWEEP, POLICY, ROOT
from tests.support import stack

import cluster as cluster_script  # noqa: E402  (scripts/cluster.py, on the path through tests.support)

REDIS_DB = 5


@pytest.fixture(scope="module")
def running_cluster(standby, tmp_path_factory):
    """Started once for the module's drills: eleven Django processes take a while to start, and
    each drill gets the cluster whole again from `cluster` below."""
    home = tmp_path_factory.mktemp("cluster")
    db = settings.DATABASES["default"]
    redis_url = settings.REDIS_URL.rsplit("/", 1)[0] + f"/{REDIS_DB}"
    redis.Redis.from_url(redis_url).flushdb()
    env = {
        **os.environ,
        "DATABASE_URL": f"postgres://{db['USER']}@{db['HOST']}:{db['PORT']}/{db['NAME']}",
        "GAVEL_REPLICA_DATABASE_URL": f"postgres://{db['USER']}@{db['HOST']}:{stack.replica_port(standby)}/{db['NAME']}",
        "GAVEL_REPLICA_CHECK_SECONDS": "1",
        "REDIS_URL": redis_url,
        "GAVEL_OPA_TOKEN": settings.GAVEL_OPA_TOKEN,
        "SECRET_KEY": settings.SECRET_KEY,
        "GAVEL_BROKER_VISIBILITY_TIMEOUT": "5",  # a worker lost whole: its task goes to the other within 5 s
        "GAVEL_BEAT_LOCK_SECONDS": "6",
        "LOG_LEVEL": "WARNING",
        "PYTHONPATH": str(ROOT),
        **FAST_SWEEP,
    }
    running = cluster_script.Cluster(home=home, env=env)
    try:
        running.up()
        opa_port = stack.free_port()
        running.procs["opa"] = stack.start_opa(home / "opa", opa_port, f"{running.url}/api/v1/opa",
                                               settings.GAVEL_OPA_TOKEN, {"environment": "test", "instance": "faults"})
        running.opa_url = f"http://127.0.0.1:{opa_port}"
        with opa_client(running.opa_url) as client:
            client.put_policy("faults/ingest", POLICY)
        yield running
    finally:
        running.stop("opa")  # gracefully: it uploads what it holds
        for name in list(running.procs):
            running.stop(name, signal.SIGKILL)
        connections.close_all()


@pytest.fixture
def cluster(running_cluster, transactional_db):
    """The module's cluster as each drill expects it: every process up (the drill before may have
    killed one), no second beat, and logs read from the drill's start. Every decision of a drill
    is stored by its end, so the next one starts from the empty tables the flush leaves."""
    running_cluster.restore()
    running_cluster.mark_logs()
    yield running_cluster
