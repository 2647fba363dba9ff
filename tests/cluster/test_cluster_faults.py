"""Faults on the cluster (scripts/cluster.py), with exact counts: OPA uploads through haproxy to two
web processes, two workers store the batches, one beat sends the periodic tasks. After each fault,
every decision OPA answered with is stored exactly once (tests/faults/pipeline.py), and no periodic
task went out twice."""
from __future__ import annotations

import re
import signal
import time
from datetime import datetime

import httpx
import pytest
from django.contrib.auth import BACKEND_SESSION_KEY, HASH_SESSION_KEY, SESSION_KEY
from django.contrib.sessions.backends.db import SessionStore
from django.db import connection

from tests.faults.pipeline import Traffic, assert_stored_exactly_once
from tests.support import stack, wait_until

pytestmark = [pytest.mark.cluster, pytest.mark.django_db(transaction=True, databases=["default", "replica"])]
RATE = 150  # decisions a second
SENT = re.compile(r"\[(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}): INFO/MainProcess\] Scheduler: Sending due task (\S+)")


def storing_a_batch() -> bool:
    """A worker is inside store_batch's transaction: it holds a write lock on the decisions table."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM pg_locks l JOIN pg_class c ON c.oid = l.relation "
                       "WHERE c.relname = 'audit_decision' AND l.mode = 'RowExclusiveLock' "
                       "AND l.pid <> pg_backend_pid()")
        return cursor.fetchone()[0] > 0


def web_answers(cluster, name: str) -> dict[int, int]:
    counts: dict[int, int] = {}
    for line in cluster.log(name).splitlines():
        status, _, request = line.partition(" ")
        if status.isdigit() and "/api/v1/opa/logs" in request:
            counts[int(status)] = counts.get(int(status), 0) + 1
    return counts


def test_a_web_process_killed_while_opa_uploads_through_the_proxy(cluster):
    with Traffic(cluster.opa_url, rate=RATE) as traffic:
        wait_until(lambda: web_answers(cluster, "web1").get(204, 0) >= 2, timeout=30,
                   message="web1 to take uploads through the proxy")
        before = web_answers(cluster, "web2").get(204, 0)
        cluster.stop("web1", signal.SIGKILL)  # a web machine lost, its requests in flight with it
        traffic.wait_for(len(traffic.ids) + 3 * RATE)
        # OPA uploads every few seconds, later on a loaded machine: wait for web2's next one.
        wait_until(lambda: web_answers(cluster, "web2").get(204, 0) > before, timeout=60,
                   message="web2 to take an upload while web1 is down")
        cluster.start_web("web1")
        traffic.wait_for(len(traffic.ids) + RATE)
    assert_stored_exactly_once(traffic.ids, cluster)


def test_a_worker_killed_mid_batch_leaves_it_to_the_other(cluster):
    with Traffic(cluster.opa_url, rate=2 * RATE) as traffic:
        wait_until(storing_a_batch, timeout=30, interval=0.005, message="a worker to be storing a batch")
        cluster.stop("worker1", signal.SIGKILL)  # the whole worker, as when its machine is lost
        traffic.wait_for(len(traffic.ids) + 2 * RATE)
    assert_stored_exactly_once(traffic.ids, cluster)
    assert "succeeded" in cluster.log("worker2")


def signed_in_cookie(make_user) -> dict[str, str]:
    """A session the web processes read from the database, as after a login."""
    user = make_user("auditor")
    session = SessionStore()
    session.update({SESSION_KEY: str(user.pk), BACKEND_SESSION_KEY: "django.contrib.auth.backends.ModelBackend",
                    HASH_SESSION_KEY: user.get_session_auth_hash()})
    session.create()
    return {"sessionid": session.session_key}


def test_the_replica_stopped_and_restarted_under_traffic(cluster, standby, make_user):
    cookies = signed_in_cookie(make_user)

    def search() -> str:
        answer = httpx.get(f"{cluster.url}/audit/", cookies=cookies, timeout=30)
        assert answer.status_code == 200, answer.text[:500]
        return answer.text

    with Traffic(cluster.opa_url, rate=RATE) as traffic:
        wait_until(lambda: "from the read replica" in search(), timeout=30, message="searches to read the replica")
        stack.stop_replica(standby)
        wait_until(lambda: "from the primary database" in search(), timeout=10,
                   message="searches to fall back to the primary")
        traffic.wait_for(len(traffic.ids) + RATE)
        stack.start_replica(standby, fresh=False)
        wait_until(lambda: "from the read replica" in search(), timeout=60, message="searches to read the replica again")
        traffic.wait_for(len(traffic.ids) + RATE)
    assert_stored_exactly_once(traffic.ids, cluster)


def sends(log: str, entry: str) -> list[datetime]:
    return [datetime.strptime(moment, "%Y-%m-%d %H:%M:%S,%f") for moment, name in SENT.findall(log) if name == entry]


def test_a_second_beat_started_by_mistake_sends_nothing(cluster):
    wait_until(lambda: "beat: Acquired lock" in cluster.log("beat", since_spawn=True), timeout=60,
               message="the beat to hold its lock")
    cluster.start_beat("beat2")
    with Traffic(cluster.opa_url, rate=RATE) as traffic:
        wait_until(lambda: "beat: Starting..." in cluster.log("beat2"), timeout=60, message="the second beat to start")
        time.sleep(6)  # three rounds of the every-2-s sweep
        traffic.wait_for(len(traffic.ids) + RATE)
    assert_stored_exactly_once(traffic.ids, cluster)
    entry = "requeue-stalled-log-batches"
    assert sends(cluster.log("beat2"), entry) == [] and "Acquired lock" not in cluster.log("beat2")
    first = sends(cluster.log("beat"), entry)
    assert len(first) >= 3
    gaps = [(b - a).total_seconds() for a, b in zip(first, first[1:])]
    assert min(gaps) >= 1.5, gaps  # every 2 s, never twice
