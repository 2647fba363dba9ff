"""OPA's decision-log plugin uploads batches to /api/v1/opa/logs.

204 only for a batch that is committed; every refusal says why and keeps nothing,
so OPA retries it; a batch delivered twice stores each decision once.
"""
import gzip
import json
import os
import uuid

import pytest
from django.conf import settings

from audit.ingest import store_batch
from core.models import Decision, LogBatch, Outcome
from tests.factories import PolicyFactory

pytestmark = pytest.mark.django_db
URL = "/api/v1/opa/logs"


def event(**overrides):
    base = {
        "decision_id": str(uuid.uuid4()),
        "timestamp": "2026-11-27T08:15:30.123456789Z",
        "path": "gavel/budget/decision",
        "input": {"user": {"id": "u-42", "role": "guest"}},
        "result": {"allow": False, "reasons": ["only admins may do this"]},
        "labels": {"id": "c0ffee", "version": "1.22.2", "environment": "test"},
        "metrics": {"timer_rego_query_eval_ns": 51234, "timer_server_handler_ns": 90000},
        "requested_by": "127.0.0.1:50000",
    }
    return {**base, **overrides}


def upload(client, body, token=None, gzipped=True):
    data = gzip.compress(body if isinstance(body, bytes) else json.dumps(body).encode()) if gzipped else body
    return client.post(URL, data=data, content_type="application/json", HTTP_CONTENT_ENCODING="gzip",
                       HTTP_AUTHORIZATION=f"Bearer {token or settings.GAVEL_OPA_TOKEN}")


def refused_with(response, status, words):
    assert response.status_code == status, response.content
    assert words in response.json()["error"]
    assert not LogBatch.objects.exists() and not Decision.objects.exists()


def test_a_batch_is_staged_then_stored_as_decisions(client):
    PolicyFactory(name="budget")
    events = [event(), event(result={"allow": True, "reasons": []})]
    response = upload(client, events)
    assert response.status_code == 204
    batch = LogBatch.objects.get()
    assert (batch.status, batch.event_count) == (LogBatch.Status.QUEUED, 2)

    store_batch(batch.pk)

    denied = Decision.objects.get(decision_id=events[0]["decision_id"])
    assert denied.outcome == Outcome.DENY
    assert denied.reasons == ["only admins may do this"]
    assert denied.policy.name == "budget"
    assert denied.input == events[0]["input"]
    assert denied.latency_ns == 51234
    assert denied.labels["id"] == "c0ffee"
    assert denied.timestamp.isoformat() == "2026-11-27T08:15:30.123456+00:00"
    assert Decision.objects.get(decision_id=events[1]["decision_id"]).outcome == Outcome.ALLOW


def test_a_batch_delivered_twice_stores_each_decision_once(client):
    events = [event(), event()]
    assert upload(client, events).status_code == 204
    assert upload(client, events + [event()]).status_code == 204
    first, second = LogBatch.objects.order_by("pk")
    store_batch(first.pk)
    store_batch(second.pk)
    store_batch(second.pk)  # a redelivered task is harmless too
    second.refresh_from_db()
    assert Decision.objects.count() == 3
    assert (second.stored_count, second.duplicate_count) == (1, 2)


def test_wrong_or_missing_token_is_401(client):
    refused_with(upload(client, [event()], token="not-the-token"), 401, "bearer token")
    response = client.post(URL, data=gzip.compress(b"[]"), content_type="application/json")
    refused_with(response, 401, "bearer token")


def test_a_body_that_is_not_gzip_is_400(client):
    refused_with(upload(client, json.dumps([event()]).encode(), gzipped=False), 400, "not gzip")


def test_gzip_that_is_not_json_is_400(client):
    refused_with(upload(client, b"decision_id=1"), 400, "not valid JSON")


def test_json_that_is_not_an_array_is_400(client):
    refused_with(upload(client, {"decision_id": "x"}), 400, "JSON array of decision events, not a dict")


def test_one_bad_event_refuses_the_whole_batch(client):
    bad = event()
    del bad["decision_id"]
    refused_with(upload(client, [event(), bad, event()]), 400, "event 1 has no decision_id")
    refused_with(upload(client, [event(), "just a string"]), 400, "event 1 is a str")
    refused_with(upload(client, [event(timestamp="yesterday")]), 400, "no RFC 3339 timestamp")


def test_an_empty_body_is_400(client):
    refused_with(upload(client, b"", gzipped=False), 400, "empty")


def test_a_batch_over_the_size_limit_is_413(client, settings):
    settings.GAVEL_LOG_BATCH_MAX_BYTES = 2048
    big = [event(input={"blob": os.urandom(2000).hex()})]  # random bytes do not compress
    refused_with(upload(client, big), 413, "larger than 2048 bytes")


def test_a_gzip_bomb_is_413(client, settings):
    settings.GAVEL_LOG_BATCH_MAX_INFLATED_BYTES = 1_000_000
    bomb = b"[" + b" " * 5_000_000 + b"]"  # compresses to a few KB, inflates to 5 MB
    refused_with(upload(client, bomb), 413, "inflates to more than")


def test_a_result_of_any_shape_is_stored(client):
    odd = [event(result=["queue needs an SLA"]), event(result=True), event(result={"tools": ["x"]}), event()]
    del odd[3]["result"]  # OPA omits result when the rule is undefined
    assert upload(client, odd).status_code == 204
    store_batch(LogBatch.objects.get().pk)
    outcomes = {d.decision_id: d.outcome for d in Decision.objects.all()}
    assert [outcomes[e["decision_id"]] for e in odd] == [
        Outcome.DENY, Outcome.ALLOW, Outcome.UNDEFINED, Outcome.UNDEFINED]
    assert Decision.objects.get(decision_id=odd[3]["decision_id"]).result is None


@pytest.mark.django_db(transaction=True)
def test_the_worker_stores_an_uploaded_batch(client, celery_worker):
    from tests.support import wait_until

    events = [event() for _ in range(3)]
    assert upload(client, events).status_code == 204
    wait_until(lambda: Decision.objects.count() == 3, message="the worker to store the batch")
    assert LogBatch.objects.get().status == LogBatch.Status.STORED
