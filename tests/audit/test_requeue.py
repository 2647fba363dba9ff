"""The sweep that sends staged batches to the worker again: only those whose hand-off was lost.

Every hand-off is marked in Redis (audit/handoff.py) until the batch is stored, so a batch
waiting behind a long queue, or being retried, is not sent twice; one whose task never reached
Redis, or whose mark is older than the broker's visibility timeout, is."""
import time

import pytest

from audit import handoff
from audit.tasks import requeue_stalled_batches
from core.models import LogBatch
from tests.factories import LogBatchFactory
from tests.support import wait_until

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
def _no_marks_left():
    yield
    handoff._redis().delete(handoff.PENDING_KEY)


def test_a_batch_whose_hand_off_was_lost_is_sent_again_and_stored(celery_worker):
    lost = LogBatchFactory(events=3, age=120)  # staged while Redis was down: never marked
    young = LogBatchFactory(age=1)  # its hand-off may still be on the way

    assert requeue_stalled_batches() == 1

    wait_until(lambda: LogBatch.objects.get(pk=lost.pk).status == LogBatch.Status.STORED, message="the batch stored")
    assert LogBatch.objects.get(pk=lost.pk).stored_count == 3
    wait_until(lambda: handoff._redis().zscore(handoff.PENDING_KEY, str(lost.pk)) is None,
               message="the stored batch's hand-off mark to be cleared")
    assert LogBatch.objects.get(pk=young.pk).status == LogBatch.Status.QUEUED


def test_a_backlog_waiting_for_the_worker_gets_no_duplicate_tasks():
    backlog = [LogBatchFactory(age=300) for _ in range(5)]  # queued for minutes behind a slow worker
    handoff.mark(b.pk for b in backlog)

    assert requeue_stalled_batches() == 0
    assert requeue_stalled_batches() == 0


def test_a_hand_off_older_than_the_visibility_timeout_counts_as_lost(celery_worker):
    batch = LogBatchFactory(age=900)
    # Marked when sent, then nothing for longer than Redis waits before it redelivers an unacked task.
    handoff._redis().zadd(handoff.PENDING_KEY, {str(batch.pk): time.time() - handoff.lost_after_seconds() - 1})

    assert handoff.lost([batch.pk]) == [batch.pk]
    assert requeue_stalled_batches() == 1
    wait_until(lambda: LogBatch.objects.get(pk=batch.pk).status == LogBatch.Status.STORED, message="the batch stored")
