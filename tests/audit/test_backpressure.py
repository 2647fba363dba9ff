"""Backpressure: when the backlog is over its limit Gavel refuses with 429 and Retry-After,
keeps nothing, and OPA's own retry delivers the batch once there is room."""
import gzip
import json
import uuid

import pytest
from django.conf import settings as django_settings

from audit import ingest_health
from core.models import Decision, LogBatch
from core.opa.client import opa_client
from tests.support import wait_until


def upload(client):
    body = gzip.compress(json.dumps([{"decision_id": str(uuid.uuid4()), "timestamp": "2026-11-27T08:00:00Z",
                                      "path": "gavel/x", "result": True}]).encode())
    return client.post("/api/v1/opa/logs", data=body, content_type="application/json",
                       HTTP_AUTHORIZATION=f"Bearer {django_settings.GAVEL_OPA_TOKEN}")


@pytest.mark.django_db
def test_a_full_queue_answers_429_with_retry_after_and_keeps_nothing(client, settings):
    settings.GAVEL_INGEST_MAX_QUEUED_BATCHES = 2
    assert upload(client).status_code == 204 and upload(client).status_code == 204  # on_commit never runs here
    refused_before = ingest_health.refused_last_hour()[429]

    response = upload(client)

    assert response.status_code == 429
    assert response["Retry-After"] == str(settings.GAVEL_INGEST_RETRY_AFTER_SECONDS)
    assert "2 batches are waiting" in response.json()["error"]
    assert LogBatch.objects.count() == 2
    assert ingest_health.refused_last_hour()[429] == refused_before + 1


@pytest.mark.django_db
def test_a_full_queue_refuses_before_unpacking_the_batch(client, settings):
    """Under a burst most uploads are refused: a refusal must not cost the gunzip and parse."""
    settings.GAVEL_INGEST_MAX_QUEUED_BATCHES = 1
    assert upload(client).status_code == 204

    response = client.post("/api/v1/opa/logs", data=b"not even gzip", content_type="application/json",
                           HTTP_AUTHORIZATION=f"Bearer {django_settings.GAVEL_OPA_TOKEN}")

    assert response.status_code == 429  # not 400: the body was never read
    assert LogBatch.objects.count() == 1


@pytest.mark.django_db
def test_the_ingest_page_shows_depth_lag_and_refusals(client, make_user, settings):
    settings.GAVEL_INGEST_MAX_QUEUED_BATCHES = 1
    upload(client)
    upload(client)  # refused
    client.force_login(make_user("security_admin"))
    page = client.get("/audit/ingest/")
    health = page.context["health"]
    assert health["queue_depth"] == 1 and health["refused_last_hour"][429] >= 1
    assert 'data-testid="queue-depth">1<' in page.content.decode()
    assert "every 5s" in page.content.decode()


@pytest.mark.django_db(transaction=True)
def test_opa_retries_what_gavel_refused_and_every_decision_arrives_once(opa, celery_worker, settings):
    settings.GAVEL_INGEST_MAX_QUEUED_BATCHES = 0  # refuse everything for now
    refused_before = ingest_health.refused_last_hour()[429]
    with opa_client() as client:
        client.put_policy("gavel/ping", "package gavel.ping\n\nallow := true\n")
        ids = [client.decide("gavel/ping/allow", {"n": n})["decision_id"] for n in range(5)]
        wait_until(lambda: ingest_health.refused_last_hour()[429] > refused_before, timeout=20,
                   message="OPA to upload and be refused")
        assert not Decision.objects.filter(decision_id__in=ids).exists()

        settings.GAVEL_INGEST_MAX_QUEUED_BATCHES = 500  # room again: OPA's next attempt gets in
        wait_until(lambda: Decision.objects.filter(decision_id__in=ids).count() == 5, timeout=60,
                   message="OPA's retry to deliver every decision")
        client.delete_policy("gavel/ping")
    assert sorted(Decision.objects.filter(decision_id__in=ids).values_list("decision_id", flat=True)) == sorted(ids)
