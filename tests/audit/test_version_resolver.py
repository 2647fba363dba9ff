"""A decision that names no version gets the one last confirmed in its environment when it was
made. The publications behind that answer only grow (one per OPA instance per publish), so a batch
reads those that can still decide its decisions: whatever answer it reads, it is the one the whole
history gives."""
from datetime import UTC, datetime, timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from audit.ingest import VersionResolver
from audit.ingest.versions import read_timeline
from policies import services
from tests.factories import EnvironmentFactory, PolicyFactory, PublicationFactory

pytestmark = pytest.mark.django_db
START = datetime(2026, 11, 1, tzinfo=UTC)


@pytest.fixture
def fleet(make_user):
    """Two policies of two versions each, published to prod, staging, and an OPA of no environment."""
    author = make_user("policy_author")
    versions = {}
    for name in ("budget", "deploys"):
        policy = PolicyFactory(name=name)
        versions[name] = [policy.latest_version, services.save_version(
            policy, author=author, source=policy.latest_version.source + "\n# v2\n", message="v2")]
    return versions, [EnvironmentFactory(name="prod"), EnvironmentFactory(name="staging"), None]


# (policy, version, environment, hours after START) of each confirmed publication; hours repeat on purpose
publications = st.lists(st.tuples(st.sampled_from(["budget", "deploys"]), st.integers(0, 1), st.integers(0, 2),
                                  st.integers(0, 6)), max_size=12)
# (policy, environment name, hours after START) of each decision of a batch, in the batch's order
decisions = st.lists(st.tuples(st.sampled_from(["budget", "deploys"]), st.sampled_from(["prod", "staging", "", "qa"]),
                               st.integers(-1, 7)), min_size=1, max_size=8)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(publications=publications, decisions=decisions)
@example(publications=[("budget", 0, 0, 1), ("budget", 1, 0, 1)], decisions=[("budget", "prod", 2)])  # a tie
def test_a_batch_resolves_each_decision_as_the_whole_history_does(fleet, publications, decisions):
    """The fleet is shared by every example; each example's publications go with it."""
    versions, environments = fleet
    made = [PublicationFactory(version=versions[name][number], environment=environments[where],
                               confirmed_at=START + timedelta(hours=hours))
            for name, number, where, hours in publications]
    try:
        whole = read_timeline(None)
        resolver = VersionResolver()
        for name, environment, hours in decisions:
            when = START + timedelta(hours=hours, minutes=30 * (hours % 2))  # on the hour and between
            times, found = whole.get((versions[name][0].policy_id, environment)) or whole.get(
                (versions[name][0].policy_id, None), ([], []))
            earlier = [version for time, version in zip(times, found, strict=True) if time <= when]
            expected = earlier[-1] if earlier else None
            assert resolver.resolve(f"gavel/{name}/allow", True, when, environment=environment)[1] == expected
    finally:
        for publication in made:
            publication.delete()


def test_a_live_batch_reads_only_the_publications_that_can_decide_it(fleet):
    versions, (prod, staging, _) = fleet
    budget_v1, budget_v2 = versions["budget"]
    for day in range(30):  # a month of publishes, alternating versions, to both environments
        for environment in (prod, staging):
            PublicationFactory(version=versions["budget"][day % 2], environment=environment,
                               confirmed_at=START + timedelta(days=day))

    resolver = VersionResolver()
    with CaptureQueriesContext(connection) as queries:
        assert resolver.resolve("gavel/budget/allow", True, START + timedelta(days=29, hours=1),
                                environment="prod")[1] == budget_v2
    assert sum(len(times) for times, _ in resolver.timeline.values()) == 2 + 2  # each environment's latest, twice
    assert sum("policies_publication" in q["sql"] for q in queries.captured_queries) == 2

    # A decision from before the first one read reads the whole history, once.
    assert resolver.resolve("gavel/budget/allow", True, START + timedelta(days=2, hours=1),
                            environment="staging")[1] == budget_v1
    assert resolver.resolve("gavel/budget/allow", True, START + timedelta(days=1), environment="prod")[1] == budget_v2
    assert sum(len(times) for times, _ in resolver.timeline.values()) == 60 * 2


def test_a_stored_batch_reads_from_its_earliest_decision_though_logged_out_of_order(fleet):
    """OPA logs concurrent decisions slightly out of order: the batch's earliest time bounds the read,
    so an earlier decision after the first does not make the worker read the whole history."""
    import gzip
    import json

    from audit.ingest import store_batch
    from core.models import Decision
    from tests.factories import LogBatchFactory

    versions, (prod, _, _) = fleet
    budget_v1, budget_v2 = versions["budget"]
    for day in range(30):
        PublicationFactory(version=versions["budget"][day % 2], environment=prod,
                           confirmed_at=START + timedelta(days=day))
    times = [START + timedelta(days=29, hours=1), START + timedelta(days=28, hours=1)]  # the later one first
    events = [{"decision_id": f"late-{n}", "timestamp": when.isoformat(), "path": "gavel/budget/allow",
               "result": True, "labels": {"environment": "prod"}} for n, when in enumerate(times)]
    batch = LogBatchFactory(body_gz=gzip.compress(json.dumps(events).encode()), event_count=2)

    with CaptureQueriesContext(connection) as queries:
        store_batch(batch.pk)
    assert sum("policies_publication" in q["sql"] for q in queries.captured_queries) == 2  # never all of them
    stored = dict(Decision.objects.filter(decision_id__startswith="late-").values_list("decision_id", "version"))
    assert stored == {"late-0": budget_v2.pk, "late-1": budget_v1.pk}


def test_a_bare_policy_decision_gets_the_version_its_own_environment_ran():
    """Queried without Gavel's entrypoint, a decision names no version: it gets the one last
    confirmed in its environment before it was made, not another environment's."""
    from datetime import timedelta

    from django.utils import timezone

    from audit.ingest import VersionResolver
    from fleet.models import Environment
    from policies import services
    from policies.models import Publication
    from tests.factories import PolicyFactory

    policy = PolicyFactory(name="budget")
    v1 = policy.latest_version
    v2 = services.save_version(policy, author=v1.author, source=v1.source + "\n# v2\n", message="v2")
    prod, staging = Environment.objects.create(name="prod"), Environment.objects.create(name="staging")
    now = timezone.now()
    for version, environment, hours_ago in ((v1, prod, 5), (v1, staging, 5), (v2, staging, 1)):
        Publication.objects.create(version=version, environment=environment, target_url="http://opa:8181",
                                   status=Publication.Status.OK, confirmed_at=now - timedelta(hours=hours_ago),
                                   requested_by=v1.author)

    resolver = VersionResolver()
    assert resolver.resolve("gavel/budget/allow", True, now, environment="prod")[1] == v1
    assert resolver.resolve("gavel/budget/allow", True, now, environment="staging")[1] == v2
    assert resolver.resolve("gavel/budget/allow", True, now, environment="nowhere")[1] == v2  # any environment's
    assert resolver.resolve("gavel/budget/allow", True, now - timedelta(hours=3), environment="staging")[1] == v1


def test_resolving_versions_never_reads_their_sources(make_user):
    """The publications are read as plain values, and each version without its Rego and tests: with
    them, 900 publications took 82 ms a batch, 13 ms without."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext
    from django.utils import timezone

    from audit.ingest import VersionResolver
    from fleet.models import Environment
    from policies.models import Publication
    from tests.factories import PolicyFactory

    version = PolicyFactory(name="budget").latest_version
    prod = Environment.objects.create(name="prod")
    Publication.objects.create(version=version, environment=prod, target_url="http://opa:8181",
                               status=Publication.Status.OK, confirmed_at=timezone.now(), requested_by=version.author)

    with CaptureQueriesContext(connection) as queries:
        resolver = VersionResolver()
        assert resolver.resolve("gavel/budget/allow", {"policy_version": 1}, timezone.now())[1] == version
        reported = len(queries.captured_queries)
        assert resolver.resolve("gavel/budget/allow", True, timezone.now(), environment="prod")[1] == version
    assert not [q["sql"] for q in queries.captured_queries if '"source"' in q["sql"] or '"tests"' in q["sql"]]
    # A version the decision reports needs no publications: they are read only for one that does not.
    assert not any("policies_publication" in q["sql"] for q in queries.captured_queries[:reported])
    assert any("policies_publication" in q["sql"] for q in queries.captured_queries[reported:])


def test_each_latest_publication_is_one_step_down_an_index(fleet):
    """However long the history, each (policy, environment) pair's latest publication by a time is
    found along `publication_latest`, newest first, with nothing sorted."""
    from django.db import transaction

    from policies.models import Publication

    versions, environments = fleet
    version = versions["budget"][0]
    Publication.objects.bulk_create(  # a long history: a thousand publishes of one version to each environment
        PublicationFactory.build(version=version, policy_id=version.policy_id, environment=environment,
                                 confirmed_at=START - timedelta(hours=hours))
        for hours in range(1000) for environment in environments)
    sql, params = Publication.objects.latest_confirmed_by(START).order_by().values_list("id").query.sql_with_params()
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("ANALYZE policies_publication")
        cursor.execute("SET LOCAL enable_seqscan = off")  # the other tables are a few rows: not the point here
        cursor.execute("EXPLAIN " + sql, params)
        plan = "\n".join(row[0] for row in cursor.fetchall())

    assert "Index Scan Backward using publication_latest" in plan, plan
    assert "Sort" not in plan, plan
    assert Publication.objects.latest_confirmed_by(START).count() == 3  # prod, staging and no environment
