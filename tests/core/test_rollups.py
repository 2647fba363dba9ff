"""Per-minute, per-hour and per-day rollups: what the charts read. Written with the decisions they count, so they
always equal a count over the stored rows, however often OPA delivers a batch."""
import gzip
import importlib
import json
from collections import Counter
from datetime import UTC, datetime

import pytest
from django.conf import settings as django_settings
from django.db import connection
from django.db.models import Sum

from audit.ingest import store_batch
from core import rollups
from core.models import Decision, DecisionRollup, LogBatch, ReasonRollup

pytestmark = pytest.mark.django_db


def upload(client, events):
    response = client.post("/api/v1/opa/logs", data=gzip.compress(json.dumps(events).encode()),
                           content_type="application/json",
                           HTTP_AUTHORIZATION=f"Bearer {django_settings.GAVEL_OPA_TOKEN}")
    assert response.status_code == 204
    store_batch(LogBatch.objects.latest("pk").pk)


def events(count, start=0):
    for n in range(start, start + count):
        denied = n % 3 == 0
        yield {"decision_id": f"d-{n}", "timestamp": f"2026-11-27T10:{n % 4:02d}:{n % 60:02d}Z", "path": "gavel/x",
               "labels": {"environment": "prod" if n % 2 else "dev"},
               "input": {"user": f"u-{n % 5}"},
               "result": {"allow": not denied, "reasons": ["over budget", "no ticket"][: 1 + n % 2] if denied else []},
               "metrics": {"timer_rego_query_eval_ns": 50_000 + 1000 * n}}


@pytest.mark.parametrize("granularity", DecisionRollup.Granularity.values)
def test_rollups_equal_the_stored_rows_after_redelivery(client, granularity):
    upload(client, list(events(30)))
    upload(client, list(events(30, start=20)))  # 10 of these were delivered before

    assert Decision.objects.count() == 50
    raw = Counter(Decision.objects.values_list("environment", "outcome"))
    rolled = {(r["environment"], r["outcome"]): r["n"]
              for r in DecisionRollup.objects.filter(granularity=granularity).values("environment", "outcome")
              .annotate(n=Sum("decisions"))}
    assert rolled == raw
    raw_reasons = Counter(reason for reasons in Decision.objects.values_list("reasons", flat=True) for reason in reasons)
    reasons = ReasonRollup.objects.filter(granularity=granularity)
    assert dict(reasons.values_list("reason").annotate(n=Sum("decisions"))) == raw_reasons
    histograms = rollups.latency_histograms(DecisionRollup.objects.filter(granularity=granularity))
    latencies = Decision.objects.values_list("latency_ns", flat=True)
    assert histograms == {(): Counter(rollups.latency_bucket(n) for n in latencies)}
    periods = DecisionRollup.objects.filter(granularity=granularity).values_list("period", flat=True)
    assert all(p.second == 0 and (granularity == 1 or p.minute == 0) and (granularity < 1440 or p.hour == 0)
               for p in periods)


def test_rebuild_recounts_the_same_rollups(client):
    upload(client, list(events(40)))
    counted = ("granularity", "period", "environment", "outcome", "decisions", "latency")
    before = sorted(DecisionRollup.objects.values_list(*counted), key=str)
    reasons = sorted(ReasonRollup.objects.values_list("granularity", "period", "reason", "decisions"))

    rollups.rebuild()

    assert sorted(DecisionRollup.objects.values_list(*counted), key=str) == before
    assert sorted(ReasonRollup.objects.values_list("granularity", "period", "reason", "decisions")) == reasons


def test_a_rebuild_from_midday_recounts_that_whole_day(client):
    """Day rows count a whole UTC day: a rebuild from 10:02 starts at midnight, or the day row
    would keep only the decisions after 10:02 while the minute rows before it were still there."""
    upload(client, list(events(40)))
    tables = (DecisionRollup, ReasonRollup)
    before = [sorted((row[1:] for row in model.objects.values_list()), key=str) for model in tables]

    rollups.rebuild(since=datetime(2026, 11, 27, 10, 2, tzinfo=UTC))

    assert [sorted((row[1:] for row in model.objects.values_list()), key=str) for model in tables] == before


def test_the_upgrade_to_day_rows_sums_them_from_the_hour_rows(client):
    """Migration core.0005 gives decisions stored before it their day rows without reading them."""
    upload(client, list(events(40)))
    upload(client, [{**event, "timestamp": "2026-11-28T23:59:00Z"} for event in events(10, start=100)])
    tables = (DecisionRollup, ReasonRollup)  # and the latency rows it summed, a table until core.0010

    def day_rows(model):
        counted = [f.attname for f in model._meta.concrete_fields if f.name not in ("id", "latency")]
        return sorted(model.objects.filter(granularity=1440).values_list(*counted))

    counted = [day_rows(model) for model in tables]
    for model in tables:
        model.objects.filter(granularity=1440).delete()
    upgrade = importlib.import_module("core.migrations.0005_day_rollups").day_rows_from_hour_rows()
    with connection.cursor() as cursor:
        for statement in upgrade.sql:
            if "audit_latencyrollup" not in statement:
                cursor.execute(statement)

    assert [day_rows(model) for model in tables] == counted and all(counted)
    assert {p.date().isoformat() for p in DecisionRollup.objects.filter(granularity=1440)
            .values_list("period", flat=True)} == {"2026-11-27", "2026-11-28"}


def test_the_upgrade_moves_each_latency_histogram_into_its_decision_row(client):
    """Migration core.0010 folds the rows of audit_latencyrollup (one per key and bucket) into the
    decision rollup row of each key, and its reverse splits them out again: nothing lost either way,
    rows without a policy (NULL in the key) included."""
    upload(client, list(events(40)))
    counted = ("granularity", "period", "environment", "policy_id", "outcome", "decisions", "latency")
    before = sorted(DecisionRollup.objects.values_list(*counted), key=str)
    assert DecisionRollup.objects.filter(policy__isnull=True).exists()
    move = importlib.import_module("core.migrations.0010_latency_histogram_in_decision_rollups")
    with connection.cursor() as cursor:
        cursor.execute("CREATE TEMPORARY TABLE audit_latencyrollup (granularity smallint, period timestamptz, "
                       "environment varchar(100), policy_id bigint, version_id bigint, outcome varchar(20), "
                       "effective_mode varchar(10), latency_bucket smallint, decisions bigint)")
        cursor.execute(move.MOVE_BACK)  # the table as it was before core.0010, from today's rows
        cursor.execute("SELECT count(*), sum(decisions) FROM audit_latencyrollup")
        assert cursor.fetchone() == (sum(len(row[-1]) for row in before), 40 * 3)  # a row a key and bucket
        cursor.execute("UPDATE audit_decisionrollup SET latency = '{}'")
        cursor.execute(move.MOVE)
        cursor.execute("DROP TABLE audit_latencyrollup")

    assert sorted(DecisionRollup.objects.values_list(*counted), key=str) == before


def test_percentiles_from_a_histogram_are_within_a_bucket_of_the_truth():
    samples = [1_000 * n for n in range(1, 1001)]  # 1 µs .. 1 ms
    histogram = Counter(rollups.latency_bucket(s) for s in samples)
    found = rollups.percentiles(histogram, [0.5, 0.95, 0.99])
    for fraction, truth in ((0.5, 500_000), (0.95, 950_000), (0.99, 990_000)):
        assert abs(found[fraction] - truth) / truth < 0.05
    assert rollups.percentiles({}, [0.5]) == {}
