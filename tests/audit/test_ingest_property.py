"""Accepted means stored, for any batch (README "The ingest contract").

Hypothesis builds decision-log batches from everything an end user can put into a decision
(numbers of every size and kind, every Unicode category with lone surrogates and NUL, deep
and wide nesting, fields missing, of the wrong type or very long, timestamps across and
beyond the calendar, ids with any characters, one id in several environments) and sends each
through the real upload endpoint to the real worker. Every batch is either refused with a
4xx and nothing kept, or accepted and then every decision in it readable through the API and
shown by every page that lists or shows decisions.

`make test` tries GAVEL_INGEST_EXAMPLES (8) batches and two fixed ones; `bench/ingest_soak.py` runs many more.
"""
from __future__ import annotations

import gzip
import json
import os
from datetime import UTC, datetime, timedelta
from urllib.parse import urlencode

import pytest
from django.conf import settings
from django.urls import reverse
from hypothesis import HealthCheck, example, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st
from rest_framework.authtoken.models import Token

from core.display import decision_ids
from core.models import Decision, LogBatch
from tests.support import wait_until

EXAMPLES = int(os.environ.get("GAVEL_INGEST_EXAMPLES", "8"))

# Every Unicode category, lone surrogates (Cs) and NUL included.
any_text = st.text(st.characters(codec=None, categories=None), max_size=40)
numbers = st.one_of(
    st.integers(), st.integers(min_value=-(10 ** 40), max_value=10 ** 40),
    st.floats(allow_nan=False, allow_infinity=False), st.just(0), st.just(-0.0),
)
leaves = st.one_of(st.none(), st.booleans(), numbers, any_text)
documents = st.recursive(leaves, lambda inner: st.one_of(
    st.lists(inner, max_size=4), st.dictionaries(any_text, inner, max_size=4)), max_leaves=12)


def nested(depth: int) -> dict:
    document: object = "bottom"
    for _ in range(depth):
        document = {"x": [document]}
    return document


inputs = st.one_of(documents, st.integers(min_value=60, max_value=900).map(nested),
                   st.builds(lambda user, extra: {"user": {"id": user}, "tool": "search.web", **extra},
                             any_text, st.dictionaries(any_text, documents, max_size=3)))
moments = st.datetimes(min_value=datetime(1970, 1, 2), max_value=datetime(2999, 12, 30), timezones=st.just(UTC))
valid_timestamps = moments.map(lambda moment: moment.isoformat().replace("+00:00", "Z"))
timestamps = st.one_of(
    valid_timestamps,
    st.sampled_from(["0001-01-01T00:00:00Z", "9999-12-31T23:59:59Z", "2026-11-27T08:00:00", "2026-02-30T08:00:00Z",
                     "2026-11-27T23:59:60Z", "2026-11-27T25:00:00Z", "yesterday", ""]),
    st.integers(), st.none(),
)
ids = st.one_of(st.uuids().map(str), any_text.filter(bool), st.sampled_from(["a/b", "..", "~abc", "q?x=1#f", "%2F"]))
results = st.one_of(
    st.booleans(), st.none(), st.lists(any_text, max_size=3),
    st.fixed_dictionaries({"allow": st.booleans()}, optional={
        "reasons": st.lists(st.one_of(any_text, documents), max_size=3),
        "require_approval": st.booleans(), "would_deny": st.booleans(),
        "effective_mode": st.one_of(any_text, st.sampled_from(["enforce", "dry-run", "off"]), numbers),
        "exceptions_applied": st.lists(st.one_of(numbers, any_text), max_size=3),
        "approval_applied": st.one_of(any_text, numbers),
    }),
    documents,
)
fields = {
    "path": st.one_of(st.just("gavel/agent_gateway/decision"), any_text, st.text(min_size=501, max_size=700), numbers),
    "input": inputs,
    "result": results,
    "labels": st.one_of(st.dictionaries(st.sampled_from(["id", "environment", "instance", "version"]),
                                        st.one_of(any_text, st.text(min_size=200, max_size=400), numbers)), documents),
    "metrics": st.one_of(st.dictionaries(st.sampled_from(["timer_rego_query_eval_ns", "timer_server_handler_ns"]),
                                         st.one_of(numbers, any_text)), documents),
    "bundles": documents,
    "requested_by": st.one_of(any_text, numbers),
}


@st.composite
def batches(draw) -> list:
    # Half the batches keep OPA's own envelope (an id and a time OPA would send) and put everything
    # hostile inside it, so they are accepted; the other half may break the envelope too.
    hostile_envelope = draw(st.booleans())
    events = []
    for _ in range(draw(st.integers(min_value=1, max_value=4))):
        event = {"decision_id": draw(ids if hostile_envelope else st.uuids().map(str)),
                 "timestamp": draw(timestamps if hostile_envelope else valid_timestamps)}
        for name in draw(st.sets(st.sampled_from(sorted(fields)))):  # any field may be missing
            event[name] = draw(fields[name])
        events.append(event)
    if draw(st.booleans()):  # the same id again: in another environment, or sent twice
        again = dict(events[0], labels={"environment": draw(st.sampled_from(["prod", "staging"]))})
        events.append(again)
    if hostile_envelope and draw(st.booleans()):
        events.append(draw(st.sampled_from([{}, [], "event", None, {"decision_id": None}])))
    return events


# Always tried, whatever Hypothesis draws: a batch carrying the named triggers, which must be
# stored, and one OPA would never send, which must be refused.
HOSTILE_BUT_STORED = [
    {"decision_id": "a/b?c#d", "timestamp": "2026-11-27T08:00:00Z", "path": "p" * 600,
     "input": {"user": {"id": "\ud800\x00"}, "big": 10 ** 30, "deep": nested(900)},
     "result": {"allow": False, "reasons": [{"msg": 7}, "\x00"], "effective_mode": "dry-run-ish-long",
                "exceptions_applied": [10 ** 20]},
     "metrics": ["not", "an", "object"], "labels": {"environment": "prod", "id": "x" * 400}},
    {"decision_id": "a/b?c#d", "timestamp": "2026-11-27T08:00:01Z", "labels": {"environment": "staging"}},
]
NEVER_SENT = [{"decision_id": "x", "timestamp": "2026-02-30T08:00:00Z"}]
# Found by the soak: a decision that needs approval and carries no input is held like any other.
HELD_WITHOUT_INPUT = [{"decision_id": "held-without-input", "timestamp": "2026-11-27T08:00:00Z", "input": None,
                       "result": {"allow": False, "require_approval": True}}]


def upload(client, events) -> int:
    # ensure_ascii: lone surrogates travel as \\ud800 escapes, as OPA's JSON would carry them.
    body = gzip.compress(json.dumps(events, ensure_ascii=True).encode())
    return client.post("/api/v1/opa/logs", data=body, content_type="application/json", HTTP_CONTENT_ENCODING="gzip",
                       HTTP_AUTHORIZATION=f"Bearer {settings.GAVEL_OPA_TOKEN}").status_code


def api_ids(client, token) -> set[str]:
    response = client.get("/api/v1/decisions/?page_size=1000", HTTP_AUTHORIZATION=f"Token {token}")
    assert response.status_code == 200
    body = response.json()
    return {row["decision_id"] for row in (body["results"] if isinstance(body, dict) else body)}


@pytest.mark.django_db(transaction=True)
def test_every_batch_is_refused_whole_or_stored_whole_and_shown_everywhere(client, make_user, celery_worker):
    auditor = make_user("auditor")
    token = Token.objects.create(user=auditor).key
    reader = type(client)()
    reader.force_login(auditor)
    reviewer = type(client)()
    reviewer.force_login(make_user("reviewer"))

    @hypothesis_settings(max_examples=EXAMPLES, deadline=None, database=None,
                         suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                                                HealthCheck.data_too_large])
    @given(batches())
    @example(HOSTILE_BUT_STORED)
    @example(NEVER_SENT)
    @example(HELD_WITHOUT_INPUT)
    def check(events):
        batches_before, decisions_before = LogBatch.objects.count(), Decision.objects.count()
        known = set(Decision.objects.values_list("decision_id", flat=True))  # from earlier examples
        status = upload(client, events)
        assert status == 204 or 400 <= status < 500, status
        if status != 204:  # refused whole: nothing kept
            assert (LogBatch.objects.count(), Decision.objects.count()) == (batches_before, decisions_before)
            return
        batch = LogBatch.objects.latest("pk")
        wait_until(lambda: LogBatch.objects.get(pk=batch.pk).status != LogBatch.Status.QUEUED, timeout=60,
                   message="the worker to store the batch")
        batch.refresh_from_db()
        assert batch.status == LogBatch.Status.STORED, batch.failure
        stored = list(Decision.objects.filter(batch=batch))
        if not stored:  # only when every id in it was stored before (a decision is stored once)
            sent = {event.get("decision_id") for event in events if isinstance(event, dict)}
            assert sent <= known, "an accepted batch stored nothing"
            return
        assert {d.decision_id for d in stored} <= api_ids(client, token)
        for decision in stored:
            detail = reverse("audit:detail", args=[decision.decision_id])
            api = client.get(f"/api/v1/decisions/{decision_ids.to_url(decision.decision_id)}/",
                             HTTP_AUTHORIZATION=f"Token {token}")
            assert api.status_code == 200 and api.json()["decision_id"] == decision.decision_id
            assert reader.get(detail).status_code == 200, detail
            assert reader.get(reverse("audit:explain", args=[decision.decision_id])).status_code == 200
        first = stored[0]
        searches = [{"user": first.user}, {"outcome": "denied", "q": "budget"},
                    {"environment": first.environment, "path": first.path[:20]}, {"decision_id": first.decision_id}]
        for page in ["/", "/audit/", "/audit/dashboard/", *(f"/audit/?{urlencode(search)}" for search in searches),
                     *(f"/audit/dashboard/?{urlencode(search)}" for search in searches)]:
            assert reader.get(page).status_code == 200, page
        assert reviewer.get("/approvals/").status_code == 200
        since = (first.timestamp - timedelta(seconds=1)).strftime("%Y-%m-%dT%H:%M:%S")
        exported = reader.post("/audit/exports/new/", {"query": urlencode({"since": since}), "format": "jsonl"})
        assert exported.status_code in (200, 302), exported.status_code
        if exported.status_code == 200:
            assert b"".join(exported.streaming_content)

    check()
