"""A 204 is a promise: a batch the worker cannot store (here, one staged under an older, looser
contract) is set aside as failed after its attempts, with the reason, out of the queue limit,
with an alert, and can be downloaded or retried from the ingest page."""
import gzip
import json
import logging

import pytest

from audit import ingest_health
from audit.ingest import failures
from audit.tasks import store_log_batch
from core.models import LogBatch

pytestmark = pytest.mark.django_db
UNSTORABLE = gzip.compress(json.dumps([{"decision_id": ["not", "a", "string"], "timestamp": "x"}]).encode())


def attempt(batch):
    with pytest.raises(Exception):  # whatever breaks it, the worker sees an error that is no outage
        store_log_batch(batch.pk)
    batch.refresh_from_db()
    return batch


def test_a_batch_that_keeps_failing_is_set_aside_shown_and_alerted(client, make_user, caplog):
    batch = LogBatch.objects.create(body_gz=UNSTORABLE, event_count=1)
    for _ in range(failures.MAX_ATTEMPTS - 1):
        assert attempt(batch).status == LogBatch.Status.QUEUED
    assert ingest_health.queue_depth() == 1
    with caplog.at_level(logging.ERROR):
        batch = attempt(batch)
    assert batch.status == LogBatch.Status.FAILED and "unhashable" in batch.failure
    assert "set aside" in caplog.text
    assert ingest_health.queue_depth() == 0  # no longer counted toward the limit

    # Everyone who reads the audit trail is told, on every page, and may download the batch...
    client.force_login(make_user("auditor"))
    home = client.get("/").content.decode()
    assert 'data-testid="failed-batches">1 failed' in home
    page = client.get("/audit/ingest/").content.decode()
    assert "Failed batches" in page and f"/audit/ingest/failed/{batch.pk}/download/" in page
    download = client.get(f"/audit/ingest/failed/{batch.pk}/download/")
    assert download.status_code == 200 and download.content == UNSTORABLE
    # ...but running ingest again is a security admin's call.
    assert f"/audit/ingest/failed/{batch.pk}/retry/" not in page
    assert client.post(f"/audit/ingest/failed/{batch.pk}/retry/").status_code == 403

    client.force_login(make_user("security_admin"))
    assert f"/audit/ingest/failed/{batch.pk}/retry/" in client.get("/audit/ingest/").content.decode()
    assert client.post(f"/audit/ingest/failed/{batch.pk}/retry/").status_code == 302
    batch.refresh_from_db()
    assert (batch.status, batch.attempts) == (LogBatch.Status.QUEUED, 0)


def test_a_stored_or_queued_batch_cannot_be_downloaded_or_retried_as_failed(client, make_user):
    batch = LogBatch.objects.create(body_gz=UNSTORABLE, event_count=1)
    client.force_login(make_user("security_admin"))
    assert client.get(f"/audit/ingest/failed/{batch.pk}/download/").status_code == 404
    assert client.post(f"/audit/ingest/failed/{batch.pk}/retry/").status_code == 404
