"""core.store.insert, the one way decisions are written: each decision id is stored once, in the
environment that reported it first, however the copies arrive."""
import threading
from datetime import UTC, datetime

import pytest
from django.db import connection, connections, transaction

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


def test_a_decision_built_for_storing_names_a_field_missing_or_unknown():
    values = {name: value for name, value in stored_values(DecisionFactory.build()).items()
              if name not in ("id", "policy_id", "received_at", "search")}
    with pytest.raises(TypeError, match="needs a value for 'outcome'"):
        Decision.new(policy=None, **{k: v for k, v in values.items() if k != "outcome"})
    with pytest.raises(TypeError, match="not fields of a decision: colour"):
        Decision.new(policy=None, colour="red", **values)
