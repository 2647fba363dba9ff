"""A batch may carry one decision several times: OPA sends a retried upload again, and copies can
differ in their labels. However they mix, each decision id is stored once, as its earliest copy,
and the batch counts the rest as duplicates."""
import gzip
import json
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from hypothesis import given, settings
from hypothesis import strategies as st

from audit.ingest import store_batch
from core.models import Decision
from tests.factories import LogBatchFactory

pytestmark = pytest.mark.django_db
START = datetime(2026, 11, 30, 9, tzinfo=UTC)

# (which decision, seconds after START, its environment label or none)
copies = st.lists(st.tuples(st.sampled_from("abc"), st.integers(0, 2), st.sampled_from(["prod", "staging", None])),
                  min_size=1, max_size=12)


@settings(max_examples=40, deadline=None)
@given(copies=copies)
def test_each_decision_is_stored_once_as_its_earliest_copy(copies):
    run = uuid.uuid4().hex[:8]  # ids of their own: hypothesis runs every example in one database
    events = [{"decision_id": f"{run}-{name}", "timestamp": (START + timedelta(seconds=second)).isoformat(),
               "path": "gavel/x/allow", "result": True, **({"labels": {"environment": label}} if label else {})}
              for name, second, label in copies]
    body = gzip.compress(json.dumps(events).encode())

    batch = store_batch(LogBatchFactory(body_gz=body, event_count=len(events)).pk)

    earliest = {name: min(second for n, second, _ in copies if n == name) for name, _, _ in copies}
    stored = {decision_id.removeprefix(f"{run}-"): (timestamp, environment) for decision_id, environment, timestamp
              in Decision.objects.filter(decision_id__startswith=run).values_list("decision_id", "environment",
                                                                                   "timestamp")}
    assert {name: timestamp for name, (timestamp, _) in stored.items()} == {
        name: START + timedelta(seconds=second) for name, second in earliest.items()}
    for name, (_, environment) in stored.items():  # one of the earliest copies' (equal times: any of them)
        assert environment in {label or "" for n, second, label in copies if n == name and second == earliest[name]}
    assert (batch.stored_count, batch.duplicate_count) == (len(earliest), len(events) - len(earliest))


def test_a_batch_looks_for_its_partitions_once():
    """Before its transaction (making one locks the decisions table), and not again inside it."""
    events = [{"decision_id": str(uuid.uuid4()), "timestamp": (START + timedelta(days=day)).isoformat(),
               "path": "gavel/x/allow", "result": True} for day in range(3)]
    batch = LogBatchFactory(body_gz=gzip.compress(json.dumps(events).encode()), event_count=len(events))

    with CaptureQueriesContext(connection) as queries:
        assert store_batch(batch.pk).stored_count == 3
    assert sum("to_regclass" in q["sql"] for q in queries.captured_queries) == 1
