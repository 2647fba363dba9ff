"""core.store.insert, the one way decisions are written: each decision id is stored once, in the
environment that reported it first, however the copies arrive."""
import threading
from datetime import UTC, datetime

import pytest
from django.db import connection, connections, transaction
from django.db.models import signals

from core import partitions, store
from core.models import Decision, StoredDecisionId
from policies.models import Policy
from tests.factories import DecisionFactory

WHEN = datetime(2026, 11, 24, 10, tzinfo=UTC)


@pytest.mark.django_db(transaction=True)
def test_two_workers_racing_on_one_id_store_it_once():
    """Two workers store the same decision under two environments at once. Before the registry of
    stored ids, neither saw the other's uncommitted row and both kept it; now the second waits
    for the first's commit and stores nothing."""
    partitions.ensure([("prod", WHEN), ("staging", WHEN)])  # partitions are created before, as ingest does
    claimed, release, stored = threading.Event(), threading.Event(), {}

    def worker(environment: str, first: bool) -> None:
        try:
            with transaction.atomic():
                decision = DecisionFactory.build(decision_id="raced", environment=environment, timestamp=WHEN)
                stored[environment] = store.insert([decision])
                if first:
                    claimed.set()
                    release.wait(30)  # still uncommitted while the other worker tries
        finally:
            connections.close_all()

    first = threading.Thread(target=worker, args=("prod", True))
    first.start()
    assert claimed.wait(30)
    second = threading.Thread(target=worker, args=("staging", False))
    second.start()
    second.join(0.5)
    release.set()
    first.join(30)
    second.join(30)

    assert [d.environment for d in stored["prod"]] == ["prod"] and stored["staging"] == []
    assert list(Decision.objects.filter(decision_id="raced").values_list("environment", flat=True)) == ["prod"]
    assert list(StoredDecisionId.objects.values_list("decision_id", "environment")) == [("raced", "prod")]


@pytest.mark.django_db
def test_the_earliest_copy_in_a_batch_is_the_one_stored():
    later = WHEN.replace(hour=11)
    fresh = store.insert([DecisionFactory.build(decision_id="twice", environment="staging", timestamp=later),
                          DecisionFactory.build(decision_id="twice", environment="prod", timestamp=WHEN)])

    assert [(d.environment, d.timestamp) for d in fresh] == [("prod", WHEN)]
    assert store.insert([DecisionFactory.build(decision_id="twice", environment="prod", timestamp=WHEN)]) == []


@pytest.mark.django_db
def test_the_registry_keeps_one_index_on_the_id():
    """Its primary key only: Django's extra LIKE index on a varchar key is dropped (core.0008)."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT indexname FROM pg_indexes WHERE tablename = 'audit_decision_id' ORDER BY 1")
        assert [name for (name,) in cursor.fetchall()] == ["audit_decision_id_pkey", "decision_id_time"]


def stored_values(decision: Decision) -> dict:
    return {f.attname: getattr(decision, f.attname) for f in store.COPY_FIELDS}


@pytest.mark.django_db
def test_a_decision_built_for_storing_holds_what_the_keyword_constructor_would(django_assert_num_queries):
    policy = Policy(pk=7, name="budget")
    values = {name: value for name, value in stored_values(DecisionFactory.build()).items()
              if name not in ("id", "policy_id", "received_at", "search")}

    decision = Decision.new(policy=policy, **values)

    assert stored_values(decision) == stored_values(Decision(policy=policy, **values))
    assert decision._state.adding and decision.pk is None
    with django_assert_num_queries(0):
        assert decision.policy == policy  # the object given, not a query
    assert Decision.new(policy=None, **values).policy_id is None


@pytest.mark.django_db
def test_a_receiver_of_post_init_still_hears_of_each_decision_built():
    """Decision.new skips the constructor's per-field loop while nobody listens for it."""
    values = {name: value for name, value in stored_values(DecisionFactory.build()).items()
              if name not in ("id", "policy_id", "received_at", "search")}
    heard = []

    def receiver(instance, **_):
        heard.append(instance.decision_id)

    signals.post_init.connect(receiver, sender=Decision)
    try:
        built = Decision.new(policy=None, **values)
    finally:
        signals.post_init.disconnect(receiver, sender=Decision)
    assert heard == [values["decision_id"]]
    assert stored_values(built) == stored_values(Decision.new(policy=None, **values))


@pytest.mark.django_db
def test_copy_values_are_the_same_however_the_decision_was_built_or_loaded():
    received = datetime(2026, 11, 24, 12, tzinfo=UTC)
    built = DecisionFactory.build(input={"user": {"id": "ana"}}, labels={"id": "opa-1"})
    values = {name: value for name, value in stored_values(built).items()
              if name not in ("id", "policy_id", "received_at", "search")}
    stored = store.insert([Decision.new(policy=None, **values)])[0]
    loaded = Decision.objects.defer("input", "labels").get(pk=stored.pk)  # read on demand

    rows = [store.copy_row(decision, received) for decision in (Decision.new(policy=None, **values),
                                                                   Decision(**values), loaded)]

    assert rows[0] == rows[1] == rows[2]
    columns = [f.attname for f in store.COPY_FIELDS]
    assert rows[0][columns.index("input")] == '{"user":{"id":"ana"}}'  # JSON text, as COPY takes it
    assert rows[0][columns.index("received_at")] == received


def test_a_decision_built_for_storing_names_a_field_missing_or_unknown():
    values = {name: value for name, value in stored_values(DecisionFactory.build()).items()
              if name not in ("id", "policy_id", "received_at", "search")}
    with pytest.raises(TypeError, match="needs a value for 'outcome'"):
        Decision.new(policy=None, **{k: v for k, v in values.items() if k != "outcome"})
    with pytest.raises(TypeError, match="not fields of a decision: colour"):
        Decision.new(policy=None, colour="red", **values)
