"""A staged batch is OPA's upload as it arrived, inputs unmasked: once stored it is kept for
GAVEL_LOG_BATCH_KEEP_HOURS to look into, then deleted, so no second copy of the decisions
outlives their retention. Failed and waiting batches stay; the decisions and their pages too."""
import pytest
from django.conf import settings
from django.db import connection
from django.test.utils import CaptureQueriesContext

from audit import ingest_health
from audit.ingest import staged, store_batch
from audit.tasks import delete_stored_batches
from core.models import Decision, LogBatch
from tests.factories import LogBatchFactory

pytestmark = pytest.mark.django_db
HOUR = 3600


def stored(**kwargs):
    batch = LogBatchFactory(**kwargs)
    return store_batch(batch.pk)


def test_stored_batches_go_after_their_keeping_time_and_their_decisions_stay(client, make_user, settings):
    settings.GAVEL_LOG_BATCH_KEEP_HOURS = 24
    old = stored(events=2, age=25 * HOUR)
    recent = stored(events=1, age=23 * HOUR)
    waiting = LogBatchFactory(age=48 * HOUR)  # never stored: the worker still owes it
    failed = LogBatchFactory(age=48 * HOUR, status=LogBatch.Status.FAILED, failure="unstorable")

    assert delete_stored_batches() == 1
    assert set(LogBatch.objects.values_list("pk", flat=True)) == {recent.pk, waiting.pk, failed.pk}
    assert delete_stored_batches() == 0  # idempotent

    kept = Decision.objects.filter(batch_id=old.pk)
    assert kept.count() == 2  # the decisions are not the staged copy's to take along
    client.force_login(make_user("auditor"))
    for decision in kept:
        assert client.get(f"/audit/{decision.decision_id}/").status_code == 200


def test_they_go_a_chunk_at_a_time(settings):
    settings.GAVEL_LOG_BATCH_KEEP_HOURS = 1
    for _ in range(5):
        stored(age=2 * HOUR)
    with CaptureQueriesContext(connection) as queries:
        assert staged.delete_stored(chunk=2) == 5
    deletes = [q["sql"] for q in queries.captured_queries if q["sql"].startswith("DELETE")]
    assert len(deletes) == 3 and not LogBatch.objects.exists()
    assert not any("body_gz" in q["sql"] for q in queries.captured_queries)  # no body is read to delete it


def test_zero_hours_keeps_them(settings):
    settings.GAVEL_LOG_BATCH_KEEP_HOURS = 0
    stored(age=1000 * HOUR)
    assert delete_stored_batches() == 0 and LogBatch.objects.count() == 1


def test_deleting_them_is_scheduled():
    entry = next(e for e in settings.CELERY_BEAT_SCHEDULE.values() if e["task"] == "audit.tasks.delete_stored_batches")
    assert entry["schedule"] <= HOUR


def test_the_ingest_page_counts_from_the_batches_not_the_decisions():
    """The page refreshes every 5 s; counting ten million decisions by reception took 4 s."""
    stored(events=3, age=10 * 60)
    stored(events=2, age=20 * 60)
    stored(events=4, age=2 * HOUR)  # before the last hour
    LogBatchFactory(events=5)  # received, not stored yet
    with CaptureQueriesContext(connection) as queries:
        health = ingest_health.health()
    assert (health["decisions_last_hour"], health["batches_last_hour"]) == (5, 3)
    assert not any('"audit_decision"' in q["sql"] for q in queries.captured_queries)
