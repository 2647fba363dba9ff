"""The activity page and its API: auditors and security admins read who changed what, filter
by who, what, which object and when; the page escapes whatever was typed into the console."""
from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from activity import entries
from fleet.models import Environment
from rollout.models import KillSwitchChange
from tests.factories import PolicyFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def history(make_user):
    """Two people changing things: alice writes a policy, bob engages the kill switch; carol audits."""
    carol = make_user("auditor", username="carol")
    alice, bob = make_user("policy_author", username="alice"), make_user("security_admin", username="bob")
    policy = PolicyFactory(name="budget", author=alice)
    environment = Environment.objects.default()
    switch = KillSwitchChange.objects.create(environment=environment, engaged=True, changed_by=bob,
                                             reason="<script>alert('x')</script> incident")
    return {"alice": alice, "bob": bob, "carol": carol, "policy": policy, "switch": switch}


def shown_models(response):
    return [row.model for row in response.context["rows"]]


def test_auditors_see_the_newest_change_first_with_before_and_after(client, history):
    client.force_login(history["carol"])

    page = client.get("/activity/")

    assert page.status_code == 200
    first = page.context["rows"][0]
    assert first.model == "kill-switch-change" and first.action == "change"
    html = page.content.decode()
    assert "&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt; incident" in html and "<script>alert" not in html


def test_filters_by_who_what_object_and_when(client, make_user, history):
    client.force_login(make_user("security_admin"))
    policy = history["policy"]

    assert set(shown_models(client.get("/activity/", {"model": "policy"}))) == {"policy"}
    by_policy = client.get("/activity/", {"model": "policy", "object": str(policy.pk)})
    assert [row.object for row in by_policy.context["rows"]] == ["budget"]
    assert "kill-switch-change" not in shown_models(client.get("/activity/", {"model": "policy-version"}))

    with_actor = APIClient()
    with_actor.credentials(HTTP_AUTHORIZATION=f"Token {Token.objects.create(user=history['bob']).key}")
    with_actor.post("/api/v1/canary-settings/", {"policy": "budget", "environment": Environment.objects.default().name,
                                                 "mode": "dry-run", "enforce_percentage": 5, "reason": "canary"},
                    format="json")
    assert shown_models(client.get("/activity/", {"actor": "BOB"})) == ["canary-setting"]

    later = (timezone.now() + timedelta(minutes=1)).strftime("%Y-%m-%dT%H:%M")
    assert client.get("/activity/", {"since": later}).context["rows"] == []
    assert len(client.get("/activity/", {"until": later}).context["rows"]) > 3


def test_htmx_gets_only_the_table(client, make_user, history):
    client.force_login(make_user("auditor"))
    partial = client.get("/activity/", {"model": "kill-switch-change"}, HTTP_HX_REQUEST="true")
    assert b"<form" not in partial.content and b'data-testid="activity-row"' in partial.content


def test_a_bad_filter_shows_nothing_rather_than_everything(client, make_user, history):
    client.force_login(make_user("auditor"))
    page = client.get("/activity/", {"model": "no-such-thing"})
    assert page.status_code == 200 and page.context["rows"] == []


def test_the_api_lists_the_same_entries_with_the_same_filters(make_user, history):
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Token {Token.objects.create(user=make_user('auditor')).key}")

    body = api.get("/api/v1/activity/", {"model": "kill-switch-change"}).json()

    [entry] = body["results"]
    assert entry["action"] == "change" and entry["object_id"] == str(history["switch"].pk)
    assert {"field": "engaged", "label": "engaged", "before": None, "after": True} in entry["changes"]
    assert api.post("/api/v1/activity/", {}).status_code == 403  # nobody may write the log


def test_other_roles_cannot_read_the_log(client, make_user, history):
    client.force_login(make_user("policy_author"))
    assert client.get("/activity/").status_code == 403


@pytest.mark.parametrize(("stored", "words"), [
    ("2026-11-30T06:30:47.774038+00:00", "2026-11-30 06:30:47 UTC"),
    ("2026-12-03T08:30:47+02:00", "2026-12-03 06:30:47 UTC"),
    ("2026-11-30", "2026-11-30"),  # a date, or any other text, stays as it was
    ("run at 2026-11-30T06:30:47+00:00", "run at 2026-11-30T06:30:47+00:00"),
])
def test_times_read_as_utc_to_the_second(stored, words):
    assert entries.shown(stored, "expires_at") == words


def test_pages_pick_their_entries_first_and_build_only_those(client, history):
    """Building an entry (its fields, the row before it, what changed) costs more than finding it:
    the page picks its 50 from the keys and builds those alone, in the log's order across models."""
    for n in range(30):  # two models, interleaved: 60 more changes than the history holds
        PolicyFactory(name=f"drill{n}")
        KillSwitchChange.objects.create(environment=Environment.objects.default(), engaged=bool(n % 2),
                                        changed_by=history["bob"], reason=f"drill {n}")
    client.force_login(history["carol"])
    everything = [row.id for row in entries.rows(entries.log())]
    assert len(everything) > 60

    pages, built = [], []
    for number in (1, 2):
        with CaptureQueriesContext(connection) as queries:
            pages.append(client.get("/activity/", {"page": number}).context["rows"])
        # The queries that read entries whole: their outer select takes each entry's changes.
        built += [q["sql"] for q in queries.captured_queries if '"pghistory_events"."pgh_diff"' in q["sql"]]

    assert [row.id for page in pages for row in page] == everything[:len(pages[0]) + len(pages[1])]
    assert len(pages[0]) == 50 and pages[1]
    # Every query that builds entries asks for the page's own ids, never the whole log.
    assert built and all('"pgh_id" IN' in sql for sql in built)
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Token {Token.objects.create(user=history['carol']).key}")
    assert [entry["id"] for entry in api.get("/api/v1/activity/", {"page": 2}).json()["results"]] == [
        row.id for row in pages[1]]
