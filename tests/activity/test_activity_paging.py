"""Paging the activity log: each event table hands over its newest entries by its own index, and
the merged page is exactly the page of the whole log, whatever the filters."""

import pghistory
import pytest
from django.contrib.auth.models import User
from django.db import connection, transaction
from django.http import QueryDict
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from activity import entries, paging, views
from activity.filters import MACHINE_TRAFFIC, ActivityFilter
from activity.models import KillSwitchChangeEvent, PolicyEvent
from activity.tracking import REGISTRY
from approvals import services as approvals
from fleet.models import Environment
from rollout.models import KillSwitchChange
from tests.factories import PolicyFactory

pytestmark = pytest.mark.django_db

HELD = {"allow": False, "require_approval": True, "reasons": ["deletes need a reviewer"]}


@pytest.fixture
def busy_log(make_user):
    """Alice writes policies, bob flips the kill switch, enforcement points hold requests; a few
    entries of two tables share one time, as rows written in one statement would."""
    alice, bob = make_user("policy_author", username="alice"), make_user("security_admin", username="bob")
    make_user("auditor", username="carol")
    for n in range(8):
        with pghistory.context(user=alice.pk):
            PolicyFactory(name=f"rule{n}", author=alice)
        with pghistory.context(user=bob.pk):
            KillSwitchChange.objects.create(environment=Environment.objects.default(), engaged=bool(n % 2),
                                            changed_by=bob, reason=f"drill {n}")
        approvals.hold(decision_id=f"held-{n}", path="gavel_entry/deletes/decision",
                       request={"user": {"id": "dana"}, "action": "delete"}, result=HELD, created_from="api")
    tie = PolicyEvent.objects.order_by("pgh_id")[3].pgh_created_at
    copy_at(PolicyEvent, tie, count=2)
    copy_at(KillSwitchChangeEvent, tie, count=2)
    return list(entries.log().values_list("pgh_model", "pgh_id", "pgh_created_at", "pgh_obj_id", "user_id"))


def copy_at(event_model, at, count):
    """Copies of a table's first `count` entries, stamped `at` (saving an event stamps it now)."""
    columns = [f.column for f in event_model._meta.concrete_fields if f.column not in ("pgh_id", "pgh_created_at")]
    listed = ", ".join(f'"{column}"' for column in columns)
    with connection.cursor() as cursor:
        cursor.execute(f'INSERT INTO "{event_model._meta.db_table}" ({listed}, pgh_created_at) '
                       f'SELECT {listed}, %s FROM "{event_model._meta.db_table}" ORDER BY pgh_id LIMIT %s', [at, count])
    assert event_model.objects.filter(pgh_created_at=at).count() >= count


def matches(entry, wanted: dict, actor_ids: set) -> bool:
    label, _id, at, obj_id, user_id = entry
    machine_labels = {REGISTRY[key].event_model._meta.label for key in MACHINE_TRAFFIC}
    if wanted.get("model"):
        if label != REGISTRY[wanted["model"]].event_model._meta.label:
            return False
    elif not wanted.get("machines") and label in machine_labels:
        return False
    return ((not wanted.get("actor") or user_id in actor_ids)
            and (not wanted.get("object") or obj_id == wanted["object"])
            and (not wanted.get("since") or at >= wanted["since"])
            and (not wanted.get("until") or at < wanted["until"]))


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_every_page_is_the_page_of_the_whole_log(busy_log, data):
    times = sorted({at for _l, _i, at, _o, _u in busy_log})
    objects = sorted({obj for _l, _i, _a, obj, _u in busy_log if obj})
    wanted = data.draw(st.fixed_dictionaries({}, optional={
        "model": st.sampled_from(["policy", "kill-switch-change", "held-action", "held-action-step", "user"]),
        "machines": st.booleans(),
        "actor": st.sampled_from(["alice", "BOB", "nobody", "carol"]),
        "object": st.sampled_from(objects) | st.sampled_from(["not-an-id", "7e57"]),
        "since": st.sampled_from(times),
        "until": st.sampled_from(times),
        "before": st.sampled_from(busy_log),  # read on after this entry
    }))
    per_page, number = data.draw(st.integers(1, 12)), data.draw(st.integers(1, 6))
    query = QueryDict(mutable=True)
    for key, value in wanted.items():
        query[key] = value.isoformat() if key in ("since", "until") else ("on" if value is True else str(value))
    if "before" in wanted:
        query["before"] = "{}:{}".format(*wanted["before"][:2])  # the entry's id, as the page links it
    if wanted.get("machines") is False:
        del query["machines"]  # an unchecked box is not sent
    actor_ids = set(User.objects.filter(username__iexact=wanted.get("actor")).values_list("pk", flat=True))

    after = busy_log[busy_log.index(wanted["before"]) + 1:] if "before" in wanted else busy_log
    expected = [entry[:2] for entry in after if matches(entry, wanted, actor_ids)]
    paginator = paging.LogPaginator(ActivityFilter(query).keys(), per_page)

    assert paginator.count == len(expected)
    if (number - 1) * per_page < len(expected) or number == 1:
        page = paginator.page(number)
        assert list(page.object_list) == expected[(number - 1) * per_page:number * per_page]


def test_counting_stops_past_the_limit_and_says_so(client, busy_log, monkeypatch):
    monkeypatch.setattr(paging, "COUNT_LIMIT", 5)
    client.force_login(User.objects.get(username="carol"))

    page = client.get("/activity/", {"machines": "on"})

    assert page.context["page"].paginator.count == 6
    html = page.content.decode()
    assert "More than 5 changes: narrow the search" in html, html[html.index('result-count'):][:300]
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Token {Token.objects.create(user=User.objects.get(username='carol')).key}")
    body = api.get("/api/v1/activity/", {"machines": "true"}).json()
    assert (body["count"], body["count_capped"]) == (6, True)
    exact = api.get("/api/v1/activity/", {"model": "policy", "object": str(PolicyEvent.objects.first().pgh_obj_id)})
    assert (exact.json()["count"], exact.json()["count_capped"]) == (2, False)


def test_past_the_counted_pages_the_last_page_reads_on_from_its_last_entry(client, busy_log, monkeypatch):
    monkeypatch.setattr(paging, "COUNT_LIMIT", 5)
    monkeypatch.setattr(views, "PAGE_SIZE", 5)
    client.force_login(User.objects.get(username="carol"))
    everything = [f"{label}:{pgh_id}" for label, pgh_id, *_ in busy_log]

    last = client.get("/activity/", {"machines": "on", "page": 2})  # 6 counted, 5 a page: the last page
    assert [row.id for row in last.context["rows"]] == everything[5:6]
    html = last.content.decode()
    assert f'href="?machines=on&amp;before={everything[5].replace(":", "%3A")}"' in html
    onward = client.get("/activity/", {"machines": "on", "before": everything[5]})
    assert [row.id for row in onward.context["rows"]] == everything[6:6 + 5]
    assert "Reading back from" in onward.content.decode()

    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Token {Token.objects.create(user=User.objects.get(username='carol')).key}")
    first = api.get("/api/v1/activity/", {"machines": "true"}).json()  # 6 counted, all on one page
    assert [entry["id"] for entry in first["results"]] == everything[:6] and first["count_capped"]
    onward = api.get(first["next"]).json()  # reads on after the last entry
    assert "before=" in first["next"] and [entry["id"] for entry in onward["results"]] == everything[6:12]


def test_a_bad_filter_is_a_clear_error_in_the_api(busy_log):
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Token {Token.objects.create(user=User.objects.get(username='carol')).key}")
    answer = api.get("/api/v1/activity/", {"model": "no-such-thing", "since": "yesterday"})
    assert answer.status_code == 400 and set(answer.json()) == {"model", "since"}


@pytest.mark.parametrize(("before", "error"), [
    ("activity.PolicyEvent", "Not the id of an entry"),
    ("activity.NoSuchEvent:1", "Not the id of an entry"),
    ("activity.PolicyEvent:١٢", "Not the id of an entry"),  # digits, but not ASCII ones
    ("activity.PolicyEvent:99999999", "no longer in the activity log"),
])
def test_reading_on_from_an_entry_that_is_not_one_says_why(client, busy_log, before, error):
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Token {Token.objects.create(user=User.objects.get(username='carol')).key}")
    answer = api.get("/api/v1/activity/", {"before": before})
    assert answer.status_code == 400 and error in answer.json()["before"][0]
    client.force_login(User.objects.get(username="carol"))
    page = client.get("/activity/", {"before": before})
    assert page.status_code == 200 and error in page.content.decode() and not page.context["rows"]


@pytest.mark.parametrize(("search", "index"), [
    ({"since": "2026-01-01T00:00:00+00:00"}, "act_heldaction_newest"),
    ({"actor": "bob"}, "act_heldaction_actor"),
    ({"before": "held-action"}, "act_heldaction_newest"),
])
def test_each_table_hands_over_its_newest_from_its_index_without_sorting(busy_log, search, index):
    """What keeps a page cheap however long the log grows: the newest held actions of a window, of
    one actor, or after a given entry, come straight off an index, in the page's order."""
    if "before" in search:  # read on after the second newest held action
        held = REGISTRY["held-action"].event_model
        search = {"before": f"{held._meta.label}:{held.objects.order_by('-pgh_id')[1].pgh_id}"}
    query = QueryDict(mutable=True)
    query.update({"model": "held-action", **search})
    [held] = ActivityFilter(query).tables()
    sql, params = paging.newest(held)[:50].query.sql_with_params()
    with transaction.atomic(), connection.cursor() as cursor:
        # A test's table is small enough to read whole and sort: ask for the plan a large one gets.
        cursor.execute("SET LOCAL enable_seqscan = off; SET LOCAL enable_bitmapscan = off")
        cursor.execute("EXPLAIN " + sql, params)
        plan = "\n".join(row[0] for row in cursor.fetchall())

    assert f"Scan Backward using {index}" in plan, plan
    assert "Sort" not in plan, plan


def test_a_page_is_one_query_for_its_count_and_one_for_its_keys(busy_log, django_assert_num_queries):
    everything = ActivityFilter(QueryDict("machines=on")).keys()
    assert len(everything.tables) == len(REGISTRY)
    with django_assert_num_queries(2):
        page = paging.LogPaginator(everything, 5).page(2)
        assert len(page.object_list) == 5 and page.paginator.count == len(busy_log)
    with django_assert_num_queries(1):  # the actor's ids, once for all the tables
        assert len(ActivityFilter(QueryDict("machines=on&actor=bob")).tables()) == len(REGISTRY)
