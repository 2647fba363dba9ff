"""Faults on the ingest pipeline, each against the real processes: OPA ships its decision logs to
a Gavel web process, a Celery worker stores them, Postgres and Redis are the profile's own. After
each fault, every decision OPA answered with is stored exactly once (pipeline.assert_stored_exactly_once).

"Every decision OPA made" means every decision_id OPA returned to a client. OPA keeps unsent logs
only in memory, so OPA itself is stopped gracefully (SIGTERM), which uploads its buffer before it
exits; a SIGKILLed OPA loses its buffer, which no receiver can prevent (README, delivery guarantee).
"""
import os
import re
import signal
import time
from collections import Counter

import pytest
from django.db import connection

from core.models import LogBatch
from tests.faults.pipeline import Traffic, assert_stored_exactly_once
from tests.support import wait_until

pytestmark = [pytest.mark.fault, pytest.mark.django_db(transaction=True)]
RATE = 200  # decisions a second: a few hundred per OPA upload


def storing_a_batch() -> bool:
    """A worker is inside store_batch's transaction: it holds a write lock on the decisions table."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM pg_locks l JOIN pg_class c ON c.oid = l.relation "
                       "WHERE c.relname = 'audit_decision' AND l.mode = 'RowExclusiveLock' "
                       "AND l.pid <> pg_backend_pid()")
        return cursor.fetchone()[0] > 0


def test_the_worker_killed_while_storing_a_batch_redelivers_it(ingest):
    with Traffic(ingest.opa_url, rate=2 * RATE) as traffic:
        wait_until(storing_a_batch, timeout=30, interval=0.005, message="the worker to be storing a batch")
        os.kill(ingest.worker_child(), signal.SIGKILL)  # the pool process, mid-transaction
        traffic.wait_for(len(traffic.ids) + 2 * RATE)
    assert_stored_exactly_once(traffic.ids, ingest)

    worker_log = ingest.log("worker")
    assert "WorkerLostError('Worker exited prematurely: signal 9 (SIGKILL)" in worker_log
    # acks_late + reject_on_worker_lost: the killed task went back to the queue and ran again.
    received = Counter(re.findall(r"store_log_batch\[([0-9a-f-]+)\] received", worker_log))
    redelivered = [task for task, times in received.items() if times == 2]
    assert len(redelivered) == 1, received
    assert f"store_log_batch[{redelivered[0]}] succeeded" in worker_log


def test_the_whole_worker_killed_while_storing_a_batch_gets_it_back_after_the_visibility_timeout(ingest):
    # Nobody is left to requeue the task: Redis hands it on once the visibility timeout has passed
    # (600 s in production; 5 s here), and the sweep sends the batch again too (stored once all the same).
    ingest.env["GAVEL_BROKER_VISIBILITY_TIMEOUT"] = "5"
    for name in ("worker", "beat"):
        ingest.stop(name)
    ingest.start_worker()
    ingest.start_beat()
    with Traffic(ingest.opa_url, rate=2 * RATE) as traffic:
        wait_until(storing_a_batch, timeout=30, interval=0.005, message="the worker to be storing a batch")
        ingest.stop("worker", signal.SIGKILL)  # the main process and its pool, as when a machine is lost
        time.sleep(6)
        ingest.start_worker()
        traffic.wait_for(len(traffic.ids) + 2 * RATE)
    assert_stored_exactly_once(traffic.ids, ingest)


def test_redis_restarted_under_traffic(ingest, restartable):
    with Traffic(ingest.opa_url, rate=RATE) as traffic:
        traffic.wait_for(RATE)
        restartable.restart_redis(down_for=4)  # uploads meanwhile are staged; their tasks cannot be sent
        traffic.wait_for(len(traffic.ids) + RATE)
    assert_stored_exactly_once(traffic.ids, ingest)
    # Uploads during the outage were acknowledged (staged in Postgres) though their task could not be
    # sent; the sweep found them without a pending hand-off and sent them once Redis was back.
    resent = [int(n) for n in re.findall(r"requeue_stalled_batches\[[0-9a-f-]+\] succeeded in \S+: (\d+)",
                                         ingest.log("worker"))]
    assert sum(resent) > 0, ingest.logs()


def test_postgres_restarted_under_traffic(ingest, restartable):
    with Traffic(ingest.opa_url, rate=RATE) as traffic:
        traffic.wait_for(RATE)
        restartable.restart_postgres(down_for=4)
        traffic.wait_for(len(traffic.ids) + RATE)
    assert_stored_exactly_once(traffic.ids, ingest)
    assert ingest.answers().get(503), ingest.answers()  # refused while Postgres was down; OPA retried


def test_opa_restarted_under_traffic(ingest):
    with Traffic(ingest.opa_url, rate=RATE) as traffic:
        traffic.wait_for(RATE)
        ingest.stop("opa")  # SIGTERM: OPA uploads what it holds, then exits
        time.sleep(1)
        ingest.start_opa()
        traffic.wait_for(len(traffic.ids) + RATE)
    assert traffic.failed > 0, "the traffic never saw OPA down"
    assert_stored_exactly_once(traffic.ids, ingest)


def test_gavel_web_process_killed_under_traffic(ingest):
    with Traffic(ingest.opa_url, rate=RATE) as traffic:
        traffic.wait_for(RATE)
        ingest.stop("web", signal.SIGKILL)  # a crash: uploads in flight get no answer
        time.sleep(3)  # OPA's uploads fail meanwhile; it keeps the batches
        ingest.start_web()
        traffic.wait_for(len(traffic.ids) + RATE)
    assert_stored_exactly_once(traffic.ids, ingest)


def test_a_burst_over_the_queue_limit_is_refused_then_retried_by_opa(ingest):
    ingest.env["GAVEL_INGEST_MAX_QUEUED_BATCHES"] = "2"
    ingest.stop("web")
    ingest.start_web()
    ingest.stop("worker")  # nothing drains the backlog for a while
    with Traffic(ingest.opa_url, rate=2 * RATE) as traffic:
        wait_until(lambda: ingest.answers().get(429), timeout=30, message="Gavel to refuse an upload")
        assert LogBatch.objects.filter(status=LogBatch.Status.QUEUED).count() == 2  # nothing past the limit
        ingest.start_worker()
        traffic.wait_for(len(traffic.ids) + 2 * RATE)
    assert_stored_exactly_once(traffic.ids, ingest)
