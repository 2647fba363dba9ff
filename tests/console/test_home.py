"""The home page's last-24-hours figures come from the rollups, and say what a search of the raw
decisions over the same window would find."""
from datetime import UTC, datetime, timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from core.models import Decision, Outcome
from tests.factories import DecisionFactory

pytestmark = pytest.mark.django_db

# Seconds before now: anywhere in two days, in the hour before the window's start (24 h ago, cut
# to the minute), or in the minutes around it.
seconds = st.one_of(st.integers(min_value=-120, max_value=49 * 3600),
                    st.integers(min_value=23 * 3600, max_value=24 * 3600 + 120),
                    st.integers(min_value=24 * 3600 - 90, max_value=24 * 3600 + 90))
ages = st.lists(st.tuples(seconds, st.sampled_from(Outcome.values)), min_size=1, max_size=12)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(ages=ages)
def test_the_figures_match_the_raw_decisions_of_the_window(client, make_user, ages):
    now = timezone.now()
    for seconds, outcome in ages:
        DecisionFactory(timestamp=now - timedelta(seconds=seconds), outcome=outcome)
    client.force_login(make_user("auditor"))
    context = client.get("/").context
    since = datetime.fromisoformat(context["since_24h"]).replace(tzinfo=UTC)
    raw = Decision.objects.filter(timestamp__gte=since)
    assert context["outcome_counts"] == {o: raw.filter(outcome=o).count() for o in Outcome.values
                                         if raw.filter(outcome=o).exists()}
    assert context["decisions_24h"] == raw.count()


def test_the_figures_do_not_count_raw_decisions(client, make_user):
    DecisionFactory(outcome=Outcome.DENY)
    client.force_login(make_user("auditor"))
    with CaptureQueriesContext(connection) as queries:
        assert client.get("/").context["outcome_counts"] == {Outcome.DENY: 1}
    counting = [q["sql"] for q in queries.captured_queries if "COUNT(" in q["sql"] and '"audit_decision"' in q["sql"]]
    assert counting == []
