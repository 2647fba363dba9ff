"""Decision inputs and reasons are written by whoever calls the enforcement point: they arrive
through the real ingest endpoint (gzip, OPA's bearer token) and must render escaped on every
page that shows them, and odd batches must get a clear answer, never a 500."""
import gzip
import json
import uuid
from datetime import timedelta

import pytest
from django.conf import settings
from django.utils import timezone

from approvals.models import HeldAction
from audit.ingest import store_batch
from core.models import Decision, LogBatch
from fleet.models import Environment
from rollout import exceptions as policy_exceptions
from tests.factories import PolicyFactory

pytestmark = pytest.mark.django_db

SCRIPT = "<script>alert('gavel')</script>"
IMG = '<img src=x onerror="alert(1)">'
BREAKOUT = '"><svg onload=alert(2)>'
ODD = "\u202eevil\u202c \u200bzero\u200dwidth \U0001F525\U0001F469\u200d\U0001F4BB \x01\x07\x1b\x7f"
LONG = "A" * 100_000
MARKERS = (SCRIPT, IMG, BREAKOUT, "<svg")


def ship(client, events, raw=None):
    body = gzip.compress(raw if raw is not None else json.dumps(events).encode())
    return client.post("/api/v1/opa/logs", data=body, content_type="application/json",
                       HTTP_AUTHORIZATION=f"Bearer {settings.GAVEL_OPA_TOKEN}")


def ship_and_store(client, events):
    response = ship(client, events)
    assert response.status_code == 204, response.content
    store_batch(LogBatch.objects.latest("pk").pk)


def event(decision_id, input, result, path="gavel_entry/budget/decision"):
    return {"decision_id": decision_id, "timestamp": timezone.now().isoformat(), "path": path, "input": input,
            "result": result}


def nested(depth):
    value = {"leaf": SCRIPT}
    for _ in range(depth - 1):
        value = {"n": value}
    return value


@pytest.fixture
def hostile(client, make_user):
    """A held action, a decision an exception changed, and one with a 100k string, all hostile."""
    admin = make_user("security_admin")
    policy = PolicyFactory(name="budget")
    exception = policy_exceptions.request_exception(
        policy=policy, environment=Environment.objects.default(), match=[{"field": "user.id", "value": "x"}],
        justification="j", ticket="T-1", expires_at=timezone.now() + timedelta(days=1), requested_by=admin)
    held_id, waived_id, long_id = (str(uuid.uuid4()) for _ in range(3))
    hostile_input = {"user": {"id": f"{SCRIPT}{ODD}"}, "action": IMG, "tool": BREAKOUT, "resource": ODD,
                     "environment": "prod", SCRIPT: IMG}
    ship_and_store(client, [
        event(held_id, hostile_input, {"allow": False, "require_approval": True, "reasons": [SCRIPT, IMG, ODD],
                                       "policy": "budget", "policy_version": 1}),
        event(waived_id, hostile_input, {"allow": True, "reasons": [BREAKOUT + ODD], "policy": "budget",
                                         "policy_version": 1, "exceptions_applied": [exception.pk]}),
        event(long_id, {"blob": LONG, "deep": nested(200)}, {"allow": False, "reasons": [LONG + SCRIPT]}),
    ])
    assert Decision.objects.count() == 3 and HeldAction.objects.get().decision_id == held_id
    return {"held": held_id, "waived": waived_id, "long": long_id, "exception": exception.pk}


def assert_escaped(body: str, expect_shown: bool = True):
    for marker in MARKERS:
        assert marker not in body, f"{marker!r} rendered raw"
    if expect_shown:
        assert "&lt;script&gt;alert(" in body


def test_hostile_inputs_and_reasons_render_escaped_on_every_page(client, make_user, hostile):
    client.force_login(make_user("security_admin"))
    pages = {
        "/audit/": True,
        f"/audit/{hostile['held']}/": True,
        f"/audit/{hostile['waived']}/": False,
        f"/audit/{hostile['long']}/": True,
        "/approvals/": True,
        f"/approvals/{hostile['held']}/": True,
        f"/exceptions/{hostile['exception']}/": False,
        "/": False,
    }
    for url, shown in pages.items():
        response = client.get(url)
        assert response.status_code == 200, url
        body = response.content.decode()
        assert_escaped(body, shown)
    # What is shown of the odd Unicode arrives intact (escaped, not mangled): RTL override,
    # zero-width joiner and emoji are text, not markup.
    detail = client.get(f"/audit/{hostile['held']}/").content.decode()
    assert "\u202eevil" in detail and "\U0001F525" in detail
    assert hostile["waived"] in client.get(f"/exceptions/{hostile['exception']}/").content.decode()
    # The 100k string and the 200-deep input are stored whole and shown.
    long_decision = Decision.objects.get(decision_id=hostile["long"])
    assert long_decision.input["blob"] == LONG
    assert long_decision.result["reasons"] == [LONG + SCRIPT]  # whole in the result; cut in the indexed column
    assert len(long_decision.reasons[0]) == 500 and long_decision.reasons[0].endswith("…")
    assert LONG in client.get(f"/audit/{hostile['long']}/").content.decode()


def test_hostile_input_through_the_api_is_returned_as_data(client, make_user, hostile):
    from rest_framework.authtoken.models import Token

    token = Token.objects.create(user=make_user("auditor")).key
    response = client.get(f"/api/v1/decisions/{hostile['held']}/", HTTP_AUTHORIZATION=f"Token {token}")
    assert response.status_code == 200 and response["Content-Type"].startswith("application/json")
    assert response.json()["input"]["user"]["id"] == f"{SCRIPT}{ODD}"


def test_the_htmx_results_fragment_is_escaped_too(client, make_user, hostile):
    client.force_login(make_user("auditor"))
    response = client.get("/audit/", {"q": "alert"}, HTTP_HX_REQUEST="true")
    assert response.status_code == 200
    assert_escaped(response.content.decode())


def test_a_nul_character_is_stored_as_a_replacement_character_and_the_batch_keeps_the_original(client):
    """Postgres (jsonb and text) cannot store U+0000. Refusing the batch would stall that OPA's
    later decisions behind it forever, so the stored decision shows U+FFFD instead, while the
    staged batch keeps the bytes OPA sent."""
    events = [event("with-nul", {"user": {"id": "da\u0000na"}, "k\u0000": 1},
                    {"allow": False, "reasons": ["x\u0000"]}),
              event("literal", {"text": "C:\\u0000"}, {"allow": True})]
    assert ship(client, events).status_code == 204
    batch = LogBatch.objects.latest("pk")
    store_batch(batch.pk)
    stored = Decision.objects.get(decision_id="with-nul")
    assert stored.input == {"user": {"id": "da\ufffdna"}, "k\ufffd": 1}
    assert stored.reasons == ["x\ufffd"]
    assert b"\\u0000" in gzip.decompress(bytes(batch.body_gz))  # the original is kept
    # An escaped backslash before "u0000" is plain text, stored as it came.
    assert Decision.objects.get(decision_id="literal").input == {"text": "C:\\u0000"}


def test_absurdly_deep_nesting_is_refused_with_a_400_not_a_500(client):
    deep = "[" * 100_000 + "]" * 100_000
    raw = f'[{{"decision_id": "deep", "timestamp": "2026-11-27T08:00:00Z", "input": {deep}}}]'.encode()
    response = ship(client, None, raw=raw)
    assert response.status_code == 400 and "nested" in response.json()["error"]
    assert not LogBatch.objects.exists()


def test_control_characters_other_than_nul_are_stored_and_escaped(client, make_user):
    decision_id = str(uuid.uuid4())
    ship_and_store(client, [event(decision_id, {"user": {"id": "\x01\x1b[31mred\x7f"}},
                                  {"allow": False, "reasons": ["\x08<b>bold</b>"]})])
    client.force_login(make_user("auditor"))
    body = client.get(f"/audit/{decision_id}/").content.decode()
    assert "&lt;b&gt;bold&lt;/b&gt;" in body and "<b>bold</b>" not in body


def test_a_reason_too_long_to_index_does_not_stall_its_batch(client):
    """Postgres indexes at most ~2.7 kB per reason; random text does not compress below that."""
    import secrets

    reason = secrets.token_hex(4000)
    ship_and_store(client, [event("long-reason", {"user": "dana"}, {"allow": False, "reasons": [reason] * 80})])
    decision = Decision.objects.get(decision_id="long-reason")
    assert len(decision.reasons) == 50 and decision.reasons[0] == reason[:499] + "…"
    assert Decision.objects.filter(reasons__contains=[decision.reasons[0]]).count() == 1
