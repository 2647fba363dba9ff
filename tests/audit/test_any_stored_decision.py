"""Every page and API view renders any decision the ingest contract stores: ids that route
whatever they contain, one id stored in several environments or at several times (all shown,
and said so), inputs nested deep or cut for size, reasons that are not strings."""
import gzip
import json
from datetime import UTC, datetime

import pytest
from django.conf import settings
from django.urls import reverse
from rest_framework.authtoken.models import Token

from audit.ingest import store_batch
from core.display import decision_ids
from core.models import Decision, LogBatch
from tests.factories import copy_kept_before_ids_were_unique

pytestmark = pytest.mark.django_db
ODD_IDS = ["a/b", "../x", "..", "~abc", "q?x=1#frag", "100%", "spa ce", "é/ü", "explain", "a/explain"]


def event(decision_id, stamp="2026-11-27T08:00:00Z", environment="prod", **fields):
    return {"decision_id": decision_id, "timestamp": stamp, "path": "gavel/budget/decision",
            "input": {"user": {"id": "dana"}}, "labels": {"id": "opa-1", "environment": environment},
            "result": {"allow": False, "require_approval": True, "reasons": ["needs a person"]}, **fields}


def store(client, events):
    body = gzip.compress(json.dumps(events).encode())
    response = client.post("/api/v1/opa/logs", data=body, content_type="application/json",
                           HTTP_AUTHORIZATION=f"Bearer {settings.GAVEL_OPA_TOKEN}")
    assert response.status_code == 204, response.content
    store_batch(LogBatch.objects.latest("pk").pk)


def api(client, make_user, url):
    token = Token.objects.create(user=make_user("auditor")).key
    return client.get(url, HTTP_AUTHORIZATION=f"Token {token}")


@pytest.mark.parametrize("decision_id", ODD_IDS)
def test_an_id_routes_whatever_it_contains(decision_id):
    url = reverse("audit:detail", args=[decision_id])
    assert url.count("/") == 3 and "?" not in url and "#" not in url and "%" not in url
    assert decision_ids.from_url(url.split("/")[2]) == decision_id
    assert reverse("audit:explain", args=[decision_id]).startswith(url)


def test_ids_with_slashes_and_odd_characters_open_on_every_page(client, make_user):
    store(client, [event(i) for i in ODD_IDS])
    client.force_login(make_user("security_admin"))
    for url in ["/", "/audit/", "/audit/?outcome=require_approval&q=person", "/approvals/", "/audit/dashboard/"]:
        assert client.get(url).status_code == 200, url
    listing = client.get("/audit/").content.decode()
    for decision_id in ODD_IDS:
        detail = reverse("audit:detail", args=[decision_id])
        assert f'href="{detail}"' in listing
        page = client.get(detail)
        assert page.status_code == 200 and page.context["decision"].decision_id == decision_id
        assert client.get(reverse("approvals:detail", args=[decision_id])).status_code == 200
        assert api(client, make_user, f"/api/v1/decisions/{decision_ids.to_url(decision_id)}/").json()[
            "decision_id"] == decision_id
        Token.objects.all().delete()


def test_one_id_in_two_environments_and_at_two_times_shows_them_all(client, make_user):
    store(client, [event("twice", environment="prod"), event("twice", environment="staging"),
                   event("twice", stamp="2026-11-28T08:00:00Z", environment="prod")])
    first = Decision.objects.get(decision_id="twice")  # an id is stored once, in one environment
    copy_kept_before_ids_were_unique(first, "staging", first.timestamp)
    copy_kept_before_ids_were_unique(first, "prod", datetime(2026, 11, 28, 8, tzinfo=UTC))
    assert Decision.objects.filter(decision_id="twice").count() == 3
    client.force_login(make_user("auditor"))
    page = client.get("/audit/twice/")
    assert page.status_code == 200
    body = page.content.decode()
    assert "stored 3 times" in body and "staging" in body
    assert page.context["decision"].timestamp.day == 28  # the newest, unless one is picked
    older = Decision.objects.get(decision_id="twice", environment="staging")
    picked = client.get(f"/audit/twice/?row={older.pk}")
    assert picked.context["decision"].pk == older.pk
    assert client.get(f"/audit/twice/explain/?row={older.pk}").status_code == 200
    answer = api(client, make_user, "/api/v1/decisions/twice/").json()
    assert len(answer["same_id"]) == 3 and {s["environment"] for s in answer["same_id"]} == {"prod", "staging"}


def test_deep_and_large_inputs_are_collapsed_with_a_way_to_show_all(client, make_user):
    deep = "bottom"
    for _ in range(900):
        deep = {"n": deep}
    store(client, [event("deep", input={"deep": deep, "wide": list(range(60_000))})])
    client.force_login(make_user("auditor"))
    for url in ["/", "/audit/", "/approvals/", "/audit/dashboard/"]:
        assert client.get(url).status_code == 200, url
    page = client.get("/audit/deep/")
    body = page.content.decode()
    assert page.status_code == 200 and "Show all" in body
    assert len(page.context["input_json"]) <= 200_002 and page.context["input_json"].endswith("…")
    everything = client.get("/audit/deep/?show=all")
    assert everything.status_code == 200 and "59999" in everything.context["input_json"]


def test_reasons_that_are_not_strings_huge_labels_and_nul_render(client, make_user):
    store(client, [event("odd", result={"allow": False, "reasons": [{"code": 7}, ["a", 1], 3.5, None, "nul\u0000"]},
                         labels={"id": "opa", "environment": "prod", "big": "L" * 100_000, "n": 5, "o": {"x": 1}})])
    stored = Decision.objects.get()
    assert stored.reasons == ['{"code": 7}', '["a", 1]', "3.5", "null", "nul\ufffd"]
    assert stored.labels == {"id": "opa", "environment": "prod", "big": "L" * 199 + "…"}
    client.force_login(make_user("auditor"))
    assert client.get("/audit/odd/").status_code == 200
    assert client.get("/audit/?reason=3.5").status_code == 200
