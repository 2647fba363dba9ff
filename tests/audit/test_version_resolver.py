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
