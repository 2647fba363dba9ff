"""Callback URLs: Gavel's worker calls only hosts and networks GAVEL_CALLBACK_ALLOWED lists, and
only the enforcement point that submitted a held action sets its callback."""
import ipaddress
import uuid

import pytest
from hypothesis import given
from hypothesis import strategies as st
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from approvals import notifications
from approvals.models import HeldAction

pytestmark = pytest.mark.django_db

HELD_RESULT = {"allow": False, "require_approval": True, "reasons": ["deletes need a reviewer"]}
ALLOWED = "hooks.example.com,10.20.0.0/16,fd00:20::/32"


@pytest.fixture(autouse=True)
def allow_list(settings):
    settings.GAVEL_CALLBACK_ALLOWED = ALLOWED


def enforcement_point(make_user):
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {Token.objects.create(user=make_user('enforcement_point')).key}")
    return client


def submit(client, decision_id, callback_url=None):
    body = {"decision_id": decision_id, "path": "gavel_entry/deletes/decision",
            "input": {"user": {"id": "dana"}, "action": "delete"}, "result": HELD_RESULT}
    if callback_url is not None:
        body["callback_url"] = callback_url
    return client.post("/api/v1/approvals", body, format="json")


@pytest.mark.parametrize("url", [
    "http://127.0.0.1:8181/v1/data/gavel_approvals",  # OPA's own API on Gavel's host
    "http://169.254.169.254/latest/meta-data/",      # a cloud metadata service
    "http://localhost:8000/api/v1/",
    "http://hooks.example.com.evil.test/cb",          # a listed name as a prefix
    "http://10.21.0.1/cb",                            # just outside the listed network
    "http://user:pw@hooks.example.com/cb",
    "ftp://hooks.example.com/cb",
])
def test_a_callback_outside_the_allow_list_is_refused_and_nothing_is_held(make_user, url):
    response = submit(enforcement_point(make_user), "d-refused", url)
    assert response.status_code == 400 and "callback_url" in response.json()
    assert not HeldAction.objects.filter(decision_id="d-refused").exists()


@pytest.mark.parametrize("url", ["https://hooks.example.com/cb", "http://HOOKS.example.com:8443/cb",
                                 "http://10.20.3.4/cb", "http://[fd00:20::5]/cb"])
def test_a_listed_host_or_network_is_kept(make_user, url):
    response = submit(enforcement_point(make_user), "d-kept", url)
    assert response.status_code == 201
    assert HeldAction.objects.get(decision_id="d-kept").callback_url == url


def test_without_an_allow_list_no_callback_is_accepted(make_user, settings):
    settings.GAVEL_CALLBACK_ALLOWED = ""
    assert submit(enforcement_point(make_user), "d-none", "https://hooks.example.com/cb").status_code == 400


@given(st.ip_addresses(v=4))
def test_an_address_is_called_back_exactly_when_a_listed_network_holds_it(address):
    url = f"http://{address}/cb"
    assert notifications.is_allowed(url) == (address in ipaddress.ip_network("10.20.0.0/16"))


def test_only_the_submitting_enforcement_point_sets_the_callback(make_user):
    first, second = enforcement_point(make_user), enforcement_point(make_user)
    decision_id = str(uuid.uuid4())
    assert submit(first, decision_id).status_code == 201
    refused = submit(second, decision_id, "https://hooks.example.com/second")
    assert refused.status_code == 403 and "submitted" in refused.json()["detail"]
    assert submit(second, decision_id).status_code == 200  # asking again without a callback is fine
    assert submit(first, decision_id, "https://hooks.example.com/first").status_code == 200
    held = HeldAction.objects.get(decision_id=decision_id)
    assert held.callback_url == "https://hooks.example.com/first"


def test_a_callback_dropped_from_the_allow_list_is_no_longer_called(make_user, settings):
    assert submit(enforcement_point(make_user), "d-later", "https://hooks.example.com/cb").status_code == 201
    held = HeldAction.objects.get(decision_id="d-later")
    assert notifications.targets(held, "decided") == ["https://hooks.example.com/cb"]
    settings.GAVEL_CALLBACK_ALLOWED = "10.20.0.0/16"
    assert notifications.targets(held, "decided") == []
