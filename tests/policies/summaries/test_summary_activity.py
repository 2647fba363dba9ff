"""A summary's "Last 7 days" is read from the rollups: the same figures a count of the raw
decisions over the same window gives, however many decisions there are."""
from collections import Counter
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from core.models import Decision, Outcome
from policies.summaries import stats
from tests.factories import DecisionFactory, PolicyFactory

pytestmark = pytest.mark.django_db
NOW = datetime(2026, 12, 2, 7, 58, 31, tzinfo=UTC)
SINCE = datetime(2026, 11, 25, 7, 58, tzinfo=UTC)  # seven days back, from the minute

REASONS = ["user u-107 is suspended", "token budget exceeded", "needs a reviewer"]
decisions = st.lists(st.tuples(
    st.one_of(st.integers(min_value=-600, max_value=8 * 86400),  # seconds before NOW
              st.integers(min_value=7 * 86400 - 120, max_value=7 * 86400 + 120)),  # around the window's start
    st.sampled_from(Outcome.values),
    st.lists(st.sampled_from(REASONS), max_size=2, unique=True),
    st.booleans(),  # this policy's, or another's
), min_size=1, max_size=15)


@pytest.fixture
def other():
    return PolicyFactory(name="other")


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(decisions=decisions)
def test_the_figures_are_those_of_the_raw_decisions(monkeypatch, other, decisions):
    monkeypatch.setattr(stats.timezone, "now", lambda: NOW)
    policy = PolicyFactory()  # a new one each time: its rollups are its own
    for seconds, outcome, reasons, ours in decisions:
        DecisionFactory(policy=policy if ours else other, outcome=outcome, reasons=reasons,
                        timestamp=NOW - timedelta(seconds=seconds))

    activity = stats.recent_activity(policy)

    raw = Decision.objects.filter(policy=policy, timestamp__gte=SINCE)
    outcomes = Counter(raw.values_list("outcome", flat=True))
    assert activity["outcomes"] == dict(outcomes) and activity["total"] == raw.count()
    denials = Counter(r for reasons in raw.filter(outcome=Outcome.DENY).values_list("reasons", flat=True)
                      for r in reasons)
    assert activity["top_reasons"] == [{"reason": r, "count": n}
                                       for r, n in sorted(denials.items(), key=lambda item: (-item[1], item[0]))]
