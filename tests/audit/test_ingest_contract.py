"""The ingest contract (README "The ingest contract"): each trigger that once got a 204 and
then could never be stored, or an uncaught 500, is now either stored safely or refused with
a 400/413 that says why, with nothing kept."""
import gzip
import json
import uuid

import pytest
from django.conf import settings
from rest_framework.authtoken.models import Token

from audit import ingest_health
from audit.ingest import rows, store_batch
from core.models import Decision, LogBatch

pytestmark = pytest.mark.django_db
URL = "/api/v1/opa/logs"


def event(**overrides):
    base = {"decision_id": str(uuid.uuid4()), "timestamp": "2026-11-27T08:15:30.123456789Z",
            "path": "gavel/budget/decision", "input": {"user": {"id": "u-42"}},
            "result": {"allow": False, "reasons": ["only admins"]}, "labels": {"id": "c0ffee"},
            "metrics": {"timer_rego_query_eval_ns": 51234}}
    return {**base, **overrides}


def upload(client, events=None, raw=None):
    body = gzip.compress(raw if raw is not None else json.dumps(events).encode())
    return client.post(URL, data=body, content_type="application/json", HTTP_CONTENT_ENCODING="gzip",
                       HTTP_AUTHORIZATION=f"Bearer {settings.GAVEL_OPA_TOKEN}")


def accepted_and_stored(client, events=None, raw=None) -> LogBatch:
    response = upload(client, events, raw)
    assert response.status_code == 204, response.content
    batch = store_batch(LogBatch.objects.latest("pk").pk)
    assert batch.status == LogBatch.Status.STORED
    return batch


def through_api(client, make_user, decision_id):
    token = Token.objects.create(user=make_user("auditor")).key
    response = client.get(f"/api/v1/decisions/{decision_id}/", HTTP_AUTHORIZATION=f"Token {token}")
    assert response.status_code == 200, response.content
    return response.json()


def refused(response, status, words):
    assert response.status_code == status, response.content
    assert words in response.json()["error"]
    assert not LogBatch.objects.exists() and not Decision.objects.exists()


def test_numbers_beyond_float_range_are_stored_as_their_text(client, make_user):
    raw = ('[{"decision_id": "huge", "timestamp": "2026-11-27T08:00:00Z", "path": "p",'
           ' "input": {"big": 1e400, "small": -1e400, "fine": 1.5, "long": ' + "9" * 5000 + '},'
           ' "result": {"allow": true, "score": 1e400}}]').encode()
    accepted_and_stored(client, raw=raw)
    stored = Decision.objects.get(decision_id="huge")
    assert stored.input == {"big": "1e400", "small": "-1e400", "fine": 1.5, "long": "9" * 5000}
    assert stored.result["score"] == "1e400"
    assert through_api(client, make_user, "huge")["input"]["big"] == "1e400"


def test_integers_beyond_bigint_in_metrics_and_exception_ids_leave_those_columns_empty(client):
    accepted_and_stored(client, [
        event(decision_id="m", metrics={"timer_rego_query_eval_ns": 2**70}),
        event(decision_id="x", result={"allow": True, "exceptions_applied": [2**70, 7, -1, True, "3"]}),
    ])
    assert Decision.objects.get(decision_id="m").latency_ns is None
    waived = Decision.objects.get(decision_id="x")
    assert waived.exception_ids == [7]
    assert waived.result["exceptions_applied"][0] == 2**70  # the result itself is kept whole


@pytest.mark.parametrize("metrics", [[1, 2], "fast", 12, None, {"timer_rego_query_eval_ns": "12"}])
def test_metrics_that_are_not_an_object_of_integers_give_no_latency(client, metrics):
    accepted_and_stored(client, [event(decision_id="m", metrics=metrics)])
    assert Decision.objects.get(decision_id="m").latency_ns is None


def test_a_lone_surrogate_is_stored_as_a_replacement_character(client, make_user):
    raw = ('[{"decision_id": "s\\ud800", "timestamp": "2026-11-27T08:00:00Z", "path": "p\\udfff",'
           ' "input": {"user": {"id": "a\\ud800b"}, "k\\udc00": "\\ud83d\\ude00"},'
           ' "result": {"allow": false, "reasons": ["r\\ud800"]}, "labels": {"id": "\\ud800"}}]').encode()
    accepted_and_stored(client, raw=raw)
    stored = Decision.objects.get()
    assert stored.decision_id == "s\ufffd" and stored.path == "p\ufffd"
    assert stored.input == {"user": {"id": "a\ufffdb"}, "k\ufffd": "\U0001F600"}  # a real pair stays one emoji
    assert stored.reasons == ["r\ufffd"] and stored.user == "a\ufffdb"
    assert stored.labels == {"id": "\ufffd"}


def test_a_path_over_500_characters_is_cut_with_a_marker(client):
    accepted_and_stored(client, [event(decision_id="p", path="a/" * 400)])
    path = Decision.objects.get().path
    assert len(path) == 500 and path.endswith("…") and path.startswith("a/a/")


def test_an_effective_mode_over_10_characters_is_cut_and_other_result_fields_must_be_plain(client):
    accepted_and_stored(client, [event(decision_id="e", result={
        "allow": True, "effective_mode": "enforce-and-then-some", "approval_applied": {"a": [1]},
        "policy_version": 2**40, "policy": ["not", "a", "name"]})])
    stored = Decision.objects.get()
    assert stored.effective_mode == "enforce-a…" and stored.approval_ref == ""


@pytest.mark.parametrize("stamp, words", [
    ("0001-01-01T00:00:00Z", "outside 1970-2999"),
    ("9999-12-31T23:59:59Z", "outside 1970-2999"),
    ("0001-01-01T00:00:00+05:00", "outside 1970-2999"),
    ("2026-11-27T08:00:00", "without a time zone"),
    ("2026-02-30T08:00:00Z", "not a real date and time"),
    ("2026-11-27T23:59:60Z", "not a real date and time"),
    ("2026-11-27T25:00:00Z", "not a real date and time"),
    ("yesterday", "no RFC 3339 timestamp"),
    (1764230400, "no RFC 3339 timestamp"),
])
def test_timestamps_no_opa_sends_are_refused_with_a_400_that_is_counted(client, stamp, words):
    before = (ingest_health.refused_last_hour() or {}).get(400, 0)
    refused(upload(client, [event(), event(timestamp=stamp)]), 400, words)
    assert "event 1" in upload(client, [event(), event(timestamp=stamp)]).json()["error"]
    assert ingest_health.refused_last_hour()[400] == before + 2


@pytest.mark.parametrize("decision_id", [None, "", 7, ["a"], "x" * 101])
def test_a_decision_id_no_opa_sends_is_refused(client, decision_id):
    refused(upload(client, [event(decision_id=decision_id)]), 400, "has no decision_id")


def test_repeated_events_are_dropped_before_any_row_is_built(client, monkeypatch):
    built = []
    real = rows.decision_from_event
    monkeypatch.setattr(rows, "decision_from_event", lambda *args, **kw: built.append(1) or real(*args, **kw))
    same, other = event(decision_id="same"), event(decision_id="other")
    batch = accepted_and_stored(client, [same] * 5000 + [other, same])
    assert len(built) == 2
    assert (batch.stored_count, batch.duplicate_count) == (2, 5000)
    assert sorted(Decision.objects.values_list("decision_id", flat=True)) == ["other", "same"]


def test_the_same_id_again_at_another_time_is_a_copy_and_left_out(client):
    accepted_and_stored(client, [event(decision_id="d"), event(decision_id="d", timestamp="2026-11-28T08:00:00Z")])
    assert Decision.objects.filter(decision_id="d").count() == 1


def test_more_events_than_the_cap_are_refused_with_413_naming_the_cap(client, settings):
    settings.GAVEL_INGEST_MAX_EVENTS_PER_BATCH = 3
    assert upload(client, [event() for _ in range(3)]).status_code == 204
    LogBatch.objects.all().delete()
    refused(upload(client, [event() for _ in range(4)]), 413, "cap of 3 per batch")


def test_an_input_900_levels_deep_is_stored_and_read_back(client, make_user):
    deep = "leaf"
    for _ in range(900):
        deep = {"n": deep}
    accepted_and_stored(client, [event(decision_id="deep", input=deep)])
    stored = Decision.objects.get().input
    for _ in range(64):
        stored = stored["n"]
    assert isinstance(stored, str) and stored.startswith('{"n":{"n":') and stored.endswith('"leaf"' + "}" * 836)
    assert through_api(client, make_user, "deep")["decision_id"] == "deep"
