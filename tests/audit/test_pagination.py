"""The audit list's pages: newest first, read from the newest day, week or month before the
whole table, and counted up to a limit. The pages are the same as a plain slice of the search."""
import json
import re
from datetime import UTC, timedelta

import pytest
from django.db import connection
from django.http import QueryDict
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from rest_framework.authtoken.models import Token

from audit import pagination, views
from audit.filters import DecisionFilter
from core import store
from core.models import Decision, Outcome
from tests.factories import DecisionFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def decisions():
    now = timezone.now()
    ages = [timedelta(hours=h) for h in (1, 2, 3)] + [timedelta(days=d) for d in (2, 3, 4, 5, 6)] + [
        timedelta(days=60), timedelta(days=400)]
    for age in ages:
        DecisionFactory(timestamp=now - age)
    return Decision.objects.all()  # newest first, as the page lists them


@pytest.mark.parametrize("few", [False, True])
def test_every_page_is_the_plain_slice_whichever_window_holds_it(decisions, few):
    paginator = pagination.CappedPaginator(decisions, 4, few=few)
    assert paginator.count == 10 and not paginator.capped and paginator.num_pages == 3
    expected = list(decisions)
    for number in (1, 2, 3):
        assert list(paginator.page(number).object_list) == expected[(number - 1) * 4: number * 4]


def test_counting_stops_past_the_limit(decisions, monkeypatch):
    monkeypatch.setattr(pagination, "COUNT_LIMIT", 5)
    paginator = pagination.CappedPaginator(decisions, 4)
    assert paginator.count == 6 and paginator.capped  # found in the week's window; older ones never read
    assert list(paginator.page(2).object_list) == list(decisions)[4:6]


@pytest.mark.parametrize(("limit", "count", "capped"), [(2, 3, True), (7, 8, True), (8, 9, True), (10, 10, False)])
def test_wider_windows_count_only_what_the_narrower_did_not_hold(decisions, monkeypatch, limit, count, capped):
    """Three matches in the day, five more in the week, one in the year, one older: each window
    adds its own to the count, which stops one past the limit, never reading a match twice."""
    monkeypatch.setattr(pagination, "COUNT_LIMIT", limit)
    paginator = pagination.CappedPaginator(decisions, 4)
    with CaptureQueriesContext(connection) as queries:
        assert (paginator.count, paginator.capped) == (count, capped)
    counts = [q["sql"] for q in queries.captured_queries]
    # After the day's, each count stops where the window before it began.
    assert all('"timestamp" < ' in sql for sql in counts[1:]) and '"timestamp" < ' not in counts[0]
    expected = list(decisions)[:count]
    for number in paginator.page_range:
        assert list(paginator.page(number).object_list) == expected[(number - 1) * 4:number * 4]


def test_a_search_with_one_old_match_counts_each_window_once(django_assert_num_queries):
    """A decision id matches one decision, here 60 days old: the count looks in the day, week,
    month and the whole table, and the page reads the rows from the window that count found them
    in, without counting again (nine queries before, five now)."""
    old = DecisionFactory(timestamp=timezone.now() - timedelta(days=60))
    DecisionFactory()
    search = Decision.objects.filter(decision_id=old.decision_id)
    with django_assert_num_queries(5):
        page = pagination.CappedPaginator(search, 50).page(1)
        assert list(page.object_list) == [old] and page.paginator.count == 1


def test_a_decision_id_search_reads_the_whole_search_at_once(client, make_user, django_assert_num_queries):
    """One id matches one decision: looking in the day, week and month first finds nothing, so
    the page and the API count and read the whole search in one query each."""
    old = DecisionFactory(timestamp=timezone.now() - timedelta(days=60))
    DecisionFactory()
    query = QueryDict(f"decision_id={old.decision_id}")
    assert DecisionFilter.finds_few(query) and not DecisionFilter.finds_few(QueryDict("decision_id=+&user=dana"))
    search = DecisionFilter(query, queryset=Decision.objects.all()).qs
    with django_assert_num_queries(2):
        page = pagination.CappedPaginator(search, 50, few=True).page(1)
        assert list(page.object_list) == [old] and page.paginator.count == 1

    client.force_login(make_user("auditor"))
    with CaptureQueriesContext(connection) as queries:
        listed = client.get("/audit/", {"decision_id": old.decision_id}).content.decode()
    assert reverse("audit:detail", args=[old.decision_id]) in listed
    assert not any('"timestamp" >=' in q["sql"] for q in queries.captured_queries)


def test_the_count_and_the_page_read_the_same_windows(monkeypatch):
    """A decision counted in the newest day is on the page, however long after the count the page
    is read: both use the paginator's one clock, not the time of each query."""
    paginator = pagination.CappedPaginator(Decision.objects.all(), 50)
    edge = DecisionFactory(timestamp=paginator.now - timedelta(days=1))  # the day's oldest moment
    assert paginator.count == 1 and paginator.found_in[timedelta(days=1)] == 1
    later = paginator.now + timedelta(hours=1)
    monkeypatch.setattr(pagination.timezone, "now", lambda: later)
    assert list(paginator.page(1).object_list) == [edge]


def test_an_empty_search_has_one_empty_page():
    paginator = pagination.CappedPaginator(Decision.objects.all(), 50)
    assert paginator.count == 0 and list(paginator.page(1).object_list) == []


def test_counting_leaves_the_order_to_postgres(decisions):
    """Counting up to the limit in the list's order would make Postgres find and sort every match
    of the window first; in any order, it stops at the limit (2.4x faster at 10M rows)."""
    with CaptureQueriesContext(connection) as queries:
        paginator = pagination.CappedPaginator(decisions, 4)
        assert paginator.count == 10
        assert list(paginator.page(2).object_list) == list(decisions)[4:8]  # the page itself keeps the order
    counts = [q["sql"] for q in queries.captured_queries if q["sql"].startswith("SELECT COUNT(*)")]
    assert counts and not any("ORDER BY" in sql for sql in counts)


@pytest.mark.parametrize("facet", ["user", "agent", "action", "resource", "instance"])
def test_one_facets_denials_are_counted_from_its_index_alone(facet):
    """"This agent's denials" is the search people narrow most: its count must not read every
    row of the window to check the outcome (at 10M rows, 100 ms doing so, 10 ms without)."""
    crowd = DecisionFactory.build_batch(120, outcome=Outcome.DENY, reasons=["over budget"])
    for decision in crowd[:3]:
        setattr(decision, facet, "rare-one")
    store.insert(crowd)
    search = DecisionFilter(QueryDict(f"{facet}=rare-one&outcome=deny"), queryset=Decision.objects.for_rows())
    counted = pagination.CappedPaginator(search.qs, 50).windowed(None).order_by()[:10_001]
    assert counted.count() == 3
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE audit_decision")
        cursor.execute("SET LOCAL enable_seqscan = off")  # so tiny tables are read as large ones are
        cursor.execute("SET LOCAL enable_bitmapscan = off")
        sql, params = counted.values("pk").query.sql_with_params()
        cursor.execute(f"EXPLAIN (FORMAT JSON) {sql}", params)
        plan = json.dumps(cursor.fetchone()[0])
    scans = re.findall(r'"Node Type": "([^"]*Scan)"', plan)
    assert scans and set(scans) == {"Index Only Scan"}, plan


def test_the_api_counts_its_pages_as_the_page_does(client, make_user, monkeypatch):
    """The API's list stops counting at the limit too, and says so: an exact count reads every
    match (about 0.1 s a million decisions)."""
    monkeypatch.setattr(pagination, "COUNT_LIMIT", 5)
    for hours in range(7):
        DecisionFactory(timestamp=timezone.now() - timedelta(hours=hours, minutes=1))
    token = Token.objects.create(user=make_user("auditor")).key
    api = lambda **params: client.get("/api/v1/decisions/", params, HTTP_AUTHORIZATION=f"Token {token}").json()

    capped = api()
    assert (capped["count"], capped["count_capped"], len(capped["results"])) == (6, True, 6)  # past the limit
    newest = Decision.objects.first()
    with CaptureQueriesContext(connection) as queries:
        exact = api(decision_id=newest.decision_id)
    assert not any('"timestamp" >=' in q["sql"] for q in queries.captured_queries)  # no windows for an id
    assert (exact["count"], exact["count_capped"], exact["next"]) == (1, False, None)
    assert [d["decision_id"] for d in exact["results"]] == [newest.decision_id]


@pytest.fixture
def ties():
    """Twelve decisions, newest first, in four runs of three that share one time."""
    start = timezone.now() - timedelta(days=40)
    store.insert([DecisionFactory.build(timestamp=start + timedelta(days=run), outcome=outcome)
                  for run in range(4) for outcome in (Outcome.ALLOW, Outcome.DENY, Outcome.ALLOW)])
    return list(Decision.objects.all())


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_reading_on_after_any_decision_gives_the_rest_of_the_list(ties, data):
    place = data.draw(st.sampled_from(ties))
    denials_only = data.draw(st.booleans())
    query = QueryDict(mutable=True)
    query["before"] = str(pagination.Place.of(place))
    if denials_only:
        query["outcome"] = Outcome.DENY

    search = DecisionFilter(query, queryset=Decision.objects.for_rows())
    assert search.is_valid(), search.errors
    rest = ties[ties.index(place) + 1:]
    assert list(search.qs) == [d for d in rest if not denials_only or d.outcome == Outcome.DENY]


@given(at=st.datetimes(timezones=st.just(UTC)), row=st.integers(1, 2**63 - 1))
def test_a_place_reads_back_as_written(at, row):
    assert pagination.Place.parse(str(pagination.Place(at, row))) == (at, row)


@given(text=st.text())
def test_anything_else_is_not_a_place(text):
    try:
        place = pagination.Place.parse(text)
    except ValueError:
        return
    assert str(place) == text.strip()  # only what __str__ writes reads as a place


def test_the_last_counted_page_reads_on_after_its_last_decision(client, make_user, ties, monkeypatch):
    monkeypatch.setattr(pagination, "COUNT_LIMIT", 4)
    monkeypatch.setattr(views, "PAGE_SIZE", 5)  # 5 counted: one page
    client.force_login(make_user("auditor"))

    first = client.get("/audit/")
    assert list(first.context["page"].object_list) == ties[:5]
    onward = first.context["older"]
    assert f"before={str(pagination.Place.of(ties[4])).replace(':', '%3A').replace(',', '%2C')}" == onward
    assert 'data-testid="read-on"' in first.content.decode()
    second = client.get(f"/audit/?{onward}")
    assert list(second.context["page"].object_list) == ties[5:10]
    assert "Older than:</span> <strong>" in second.content.decode()  # said in words, with a link to drop it

    token = Token.objects.create(user=make_user("auditor", username="api-reader")).key
    api = lambda url: client.get(url, HTTP_AUTHORIZATION=f"Token {token}").json()  # noqa: E731
    page = api("/api/v1/decisions/?outcome=allow")  # 8 allowed: 5 counted, all on the first page
    assert page["count_capped"] and [d["decision_id"] for d in page["results"]] == [
        d.decision_id for d in ties if d.outcome == Outcome.ALLOW][:5]
    rest = api(page["next"])
    assert [d["decision_id"] for d in rest["results"]] == [
        d.decision_id for d in ties if d.outcome == Outcome.ALLOW][5:]


@pytest.mark.parametrize("before", ["yesterday", "2026-12-03T14:24:15.123456Z", "2026-12-03T14:24:15Z,12",
                                    "2026-12-03T14:24:15.123456Z,١٢"])
def test_a_place_that_is_not_one_says_why(client, make_user, before):
    client.force_login(make_user("auditor"))
    page = client.get("/audit/", {"before": before})
    assert "Not a place in the list of decisions" in page.content.decode() and not page.context["page"].object_list
    token = Token.objects.create(user=make_user("auditor", username="api-reader")).key
    answer = client.get("/api/v1/decisions/", {"before": before}, HTTP_AUTHORIZATION=f"Token {token}")
    assert answer.status_code == 400 and "Not a place" in answer.json()["before"][0]
