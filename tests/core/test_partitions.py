"""Decisions live in weekly partitions per environment; retention drops whole weeks, and a
decision OPA delivers twice is stored once."""
import gzip
import importlib
import json
from datetime import UTC, datetime, timedelta, timezone

import pytest
from django.conf import settings as django_settings
from django.core.exceptions import ImproperlyConfigured
from django.db import connection
from django.db.models import Sum
from hypothesis import given
from hypothesis import strategies as st

from approvals.models import HeldAction
from audit.ingest import store_batch
from core import partitions, store
from core.models import Decision, DecisionRollup, LogBatch, StoredDecisionId
from core.tasks import drop_expired_decisions
from tests.factories import DecisionFactory, copy_kept_before_ids_were_unique

pytestmark = pytest.mark.django_db


def upload(client, events) -> LogBatch:
    response = client.post("/api/v1/opa/logs", data=gzip.compress(json.dumps(events).encode()),
                           content_type="application/json",
                           HTTP_AUTHORIZATION=f"Bearer {django_settings.GAVEL_OPA_TOKEN}")
    assert response.status_code == 204
    return store_batch(LogBatch.objects.latest("pk").pk)


def event(decision_id, timestamp, environment="prod"):
    return {"decision_id": decision_id, "timestamp": timestamp, "path": "gavel/x",
            "labels": {"id": "opa-1", "environment": environment}, "input": {"user": "dana"},
            "result": {"allow": True}}


def partition_of(decision_id) -> str:
    with connection.cursor() as cursor:
        cursor.execute("SELECT tableoid::regclass::text FROM audit_decision WHERE decision_id = %s", [decision_id])
        return cursor.fetchone()[0]


def test_weeks_start_on_monday_utc():
    assert partitions.week_start(datetime(2026, 11, 29, 23, 59, tzinfo=UTC)) == datetime(2026, 11, 23, tzinfo=UTC)
    assert partitions.week_start(datetime(2026, 11, 30, 0, 0, tzinfo=UTC)) == datetime(2026, 11, 30, tzinfo=UTC)


# Times around one Monday, 00:00 UTC: on it, a microsecond before, a week either side, in between.
MONDAYS = st.integers(0, 50_000).map(lambda weeks: partitions.MONDAY + weeks * partitions.WEEK)
NEAR = st.sampled_from([timedelta(0), timedelta(microseconds=-1), timedelta(days=7), timedelta(days=-7),
                        timedelta(days=7, microseconds=-1)]) | st.integers(-10 * 86400, 10 * 86400).map(
    lambda seconds: timedelta(seconds=seconds))
ZONES = st.sampled_from([UTC, timezone(timedelta(hours=-9, minutes=-30)), timezone(timedelta(hours=14))])


@given(MONDAYS, st.lists(st.tuples(st.sampled_from(["prod", "staging"]), NEAR, ZONES), max_size=40))
def test_a_batch_needs_the_week_of_each_of_its_decisions(monday, offsets):
    """weeks_of skips the arithmetic for a decision in the week of the one before it: however the
    times run (back and forth across a Monday, in any zone), it finds every week they fall in."""
    keys = [(environment, (monday + offset).astimezone(zone)) for environment, offset, zone in offsets]
    assert partitions.weeks_of(keys) == {(environment, partitions.week_start(moment)) for environment, moment in keys}


def test_each_environment_and_week_gets_its_own_partition(client):
    upload(client, [event("d-prod-1", "2026-11-24T10:00:00Z"), event("d-prod-2", "2026-12-02T10:00:00Z"),
                    event("d-stage", "2026-11-24T10:00:00Z", environment="staging")])

    tables = {partition_of(d) for d in ("d-prod-1", "d-prod-2", "d-stage")}
    assert tables == {partitions.week_table("prod", datetime(2026, 11, 23, tzinfo=UTC)),
                      partitions.week_table("prod", datetime(2026, 11, 30, tzinfo=UTC)),
                      partitions.week_table("staging", datetime(2026, 11, 23, tzinfo=UTC))}
    found = {(p.environment, p.start) for p in partitions.week_partitions()}
    assert ("staging", datetime(2026, 11, 23, tzinfo=UTC)) in found


def test_a_redelivered_batch_stores_nothing_twice(client):
    events = [event(f"d-{n}", "2026-11-24T10:00:00Z") for n in range(5)]
    first = upload(client, events)
    second = upload(client, events + [event("d-new", "2026-11-24T10:00:01Z")])

    assert (first.stored_count, first.duplicate_count) == (5, 0)
    assert (second.stored_count, second.duplicate_count) == (1, 5)
    assert Decision.objects.count() == 6


def test_retention_drops_whole_weeks_of_that_environment_only(settings):
    settings.GAVEL_DECISION_RETENTION = "prod=30,*=0"
    now = datetime.now(UTC)
    old = DecisionFactory(environment="prod", timestamp=now - timedelta(days=45))
    recent = DecisionFactory(environment="prod", timestamp=now - timedelta(days=20))
    kept_elsewhere = DecisionFactory(environment="dev", timestamp=now - timedelta(days=400))
    held = HeldAction.objects.create(decision_id=old.decision_id, logged_decision=old, path=old.path, input={},
                                     created_from="decision log", expires_at=now)

    dropped = drop_expired_decisions()

    assert dropped == [partitions.week_table("prod", partitions.week_start(old.timestamp))]
    assert set(Decision.objects.values_list("pk", flat=True)) == {recent.pk, kept_elsewhere.pk}
    assert DecisionRollup.objects.filter(granularity=1).aggregate(n=Sum("decisions"))["n"] == 2  # charts forget it
    held.refresh_from_db()
    assert held.logged_decision_id is None  # the held action stays, pointing at nothing
    assert drop_expired_decisions() == []  # nothing left to drop: running again is harmless
    # Its id is free again, the others still taken: the old decision sent once more is stored again.
    assert set(StoredDecisionId.objects.values_list("pk", flat=True)) == {recent.decision_id,
                                                                          kept_elsewhere.decision_id}
    store.insert([DecisionFactory.build(decision_id=old.decision_id, environment="prod", timestamp=old.timestamp),
                  DecisionFactory.build(decision_id=recent.decision_id, environment="dev", timestamp=now)])
    assert sorted(Decision.objects.values_list("decision_id", "environment")) == sorted([
        (old.decision_id, "prod"), (recent.decision_id, "prod"), (kept_elsewhere.decision_id, "dev")])


def test_stored_ids_before_the_registry_are_registered_by_the_upgrade(client):
    """Migration core.0007 registers the ids already stored; an id stored twice before ids were
    kept once is registered with its earliest row."""
    upload(client, [event("d-1", "2026-11-24T10:00:00Z"), event("d-2", "2026-11-25T10:00:00Z", "staging")])
    # a copy from before: the same id, a day later, in another environment
    copy_kept_before_ids_were_unique(Decision.objects.get(decision_id="d-1"), "dev",
                                     datetime(2026, 11, 25, 10, tzinfo=UTC))
    StoredDecisionId.objects.all().delete()
    upgrade = importlib.import_module("core.migrations.0007_stored_decision_ids")
    with connection.cursor() as cursor:
        cursor.execute(upgrade.REGISTER_STORED)

    assert sorted(StoredDecisionId.objects.values_list("decision_id", "environment", "timestamp")) == [
        ("d-1", "prod", datetime(2026, 11, 24, 10, tzinfo=UTC)), ("d-2", "staging", datetime(2026, 11, 25, 10, tzinfo=UTC))]
    assert upload(client, [event("d-1", "2026-11-30T10:00:00Z", "dev")]).stored_count == 0


def test_a_bad_retention_setting_is_a_clear_configuration_error(settings):
    settings.GAVEL_DECISION_RETENTION = "prod=a year"
    with pytest.raises(ImproperlyConfigured, match="environment=days"):
        partitions.retention_days("prod")


def test_timestamps_at_the_ends_of_the_calendar_are_refused_before_anything_is_kept(client):
    """No OPA stamps a decision in year 1 or 9999 (README "The ingest contract"): such a batch is
    refused whole at the upload, so no week Python cannot represent ever reaches a partition."""
    for stamp in ("9999-12-31T12:00:00Z", "0001-01-01T00:00:00Z"):
        response = client.post("/api/v1/opa/logs", data=gzip.compress(json.dumps([event("d", stamp)]).encode()),
                               content_type="application/json",
                               HTTP_AUTHORIZATION=f"Bearer {django_settings.GAVEL_OPA_TOKEN}")
        assert response.status_code == 400 and "timestamp" in response.json()["error"], response.content
    assert not LogBatch.objects.exists() and not Decision.objects.exists()
