"""Searches and charts read a real streaming replica of the test database while it keeps up, and
the primary when it lags past the bound, is stopped, or fails mid-read (core/replica.py).

The replica is started once for the module through scripts/stack.py (`pg_basebackup -R` of the
profile's Postgres). It only sees committed rows, so the tests are transactional."""
from __future__ import annotations

import logging

import pytest
from django.conf import settings
from django.db import DatabaseError, connections

from core import replica
from core.models import Decision
from exports import services as exports
from tests.factories import DecisionFactory
from tests.support import stack, wait_until

pytestmark = pytest.mark.django_db(transaction=True, databases=["default", "replica"])


@pytest.fixture
def auditor(client, make_user):
    client.force_login(make_user("auditor"))
    return client


def on_replica(decision: Decision) -> bool:
    return Decision.objects.using("replica").filter(decision_id=decision.decision_id).exists()


def caught_up() -> bool:
    replica.forget()
    return replica.reads().from_replica


def replica_sql(statement: str) -> None:
    with connections["replica"].cursor() as cursor:
        cursor.execute(statement)


def test_a_decision_committed_on_the_primary_appears_on_the_replica(standby):
    decision = DecisionFactory()
    wait_until(lambda: on_replica(decision), timeout=10, interval=0.05, message="the replica to replay the insert")
    with pytest.raises(DatabaseError, match="read-only"):  # and nothing is written there
        replica_sql("INSERT INTO audit_decision (decision_id) VALUES ('x')")


def test_under_the_bound_searches_and_charts_read_the_replica_and_say_how_fresh(standby, auditor):
    decision = DecisionFactory(reasons=["on the replica"])
    wait_until(lambda: on_replica(decision) and caught_up(), timeout=10, message="the replica to catch up")
    chosen = replica.reads()
    assert chosen.alias == "replica" and 0 <= chosen.lag < settings.GAVEL_REPLICA_MAX_LAG_SECONDS

    page = auditor.get("/audit/")
    assert page.status_code == 200
    assert page.context["reads"].from_replica
    assert list(page.context["page"].object_list) == [decision]
    assert "from the read replica" in page.content.decode()
    assert "Data as of less than a second ago" in page.content.decode() or " s ago" in page.content.decode()

    api = auditor.get("/api/v1/decisions/")
    assert api.status_code == 200 and [d["decision_id"] for d in api.json()["results"]] == [decision.decision_id]
    assert api["X-Gavel-Read-From"].startswith("replica; as-of=")

    charts = auditor.get("/audit/dashboard/")
    assert charts.status_code == 200 and charts.context["reads"].from_replica and charts.context["total"] == 1
    assert "from the read replica" in charts.content.decode()


def test_over_the_bound_searches_read_the_primary_and_the_page_says_so(standby, auditor, settings):
    settings.GAVEL_REPLICA_MAX_LAG_SECONDS = 1
    first = DecisionFactory()
    wait_until(lambda: on_replica(first), timeout=10, interval=0.05, message="the replica to replay the insert")
    replica_sql("SELECT pg_wal_replay_pause()")
    try:
        later = DecisionFactory()  # received by the replica, not replayed
        wait_until(lambda: not caught_up(), timeout=10, message="the replica's lag to pass the bound")
        assert not on_replica(later)

        page = auditor.get("/audit/")
        assert page.status_code == 200
        assert page.context["reads"].alias == "default"
        assert {d.pk for d in page.context["page"].object_list} == {first.pk, later.pk}
        assert "from the primary database: the read replica is" in page.content.decode()
        assert "behind (more than 1 s)" in page.content.decode()
        api = auditor.get("/api/v1/decisions/")
        assert len(api.json()["results"]) == 2 and api["X-Gavel-Read-From"].startswith("primary; reason=the read replica is")
    finally:
        replica_sql("SELECT pg_wal_replay_resume()")
    wait_until(caught_up, timeout=10, message="the replica to catch up after its replay resumed")
    assert on_replica(later)
    assert auditor.get("/audit/").context["reads"].from_replica


def test_a_stopped_replica_falls_back_to_the_primary_and_a_restarted_one_is_read_again(standby, auditor):
    decision = DecisionFactory()
    wait_until(lambda: on_replica(decision) and caught_up(), timeout=10, message="the replica to catch up")
    assert replica.reads().from_replica  # chosen, and remembered for the next few seconds

    stack.stop_replica(standby)
    # The remembered choice is the replica: the read fails there and is made again on the primary.
    page = auditor.get("/audit/")
    assert page.status_code == 200
    assert list(page.context["page"].object_list) == [decision]
    assert "the read replica failed during this read" in page.content.decode()

    replica.forget()  # measured again: unreachable
    for url in ("/audit/", "/audit/dashboard/"):
        page = auditor.get(url)
        assert page.status_code == 200
        assert "from the primary database: the read replica is unreachable" in page.content.decode()

    later = DecisionFactory()  # written while the replica was down: it streams it on restart
    stack.start_replica(standby, fresh=False)
    wait_until(lambda: caught_up() and on_replica(later), timeout=30, message="the restarted replica to catch up")
    page = auditor.get("/audit/")
    assert page.context["reads"].from_replica
    assert {d.pk for d in page.context["page"].object_list} == {decision.pk, later.pk}


def test_an_export_job_reads_the_replica_once_it_holds_the_exports_moment_else_the_primary(standby, make_user,
                                                                                          caplog):
    auditor = make_user("auditor")
    DecisionFactory()
    wait_until(caught_up, timeout=10, message="the replica to catch up")
    replica_sql("SELECT pg_wal_replay_pause()")
    try:
        DecisionFactory()  # on the primary only
        behind = exports.start_export(auditor, "", "jsonl", as_job=True)
        with caplog.at_level(logging.INFO, logger="exports.services"):
            assert exports.run_job(behind.pk).row_count == 2
        assert f"export {behind.pk} reads the default database" in caplog.text
    finally:
        replica_sql("SELECT pg_wal_replay_resume()")

    ahead = exports.start_export(auditor, "", "jsonl", as_job=True)
    wait_until(lambda: replica.reads(as_of=ahead.as_of).from_replica, timeout=10,
               message="the replica to replay past the export's moment")
    with caplog.at_level(logging.INFO, logger="exports.services"):
        done = exports.run_job(ahead.pk)
    assert f"export {ahead.pk} reads the replica database" in caplog.text
    assert done.status == done.Status.DONE and done.row_count == 2
