"""Masking: named input fields are hashed or erased before a decision is stored, and the
decision says so. Nothing unmasked is left behind, not even in the staged batch."""
import gzip
import hashlib
import json

import pytest
from django.conf import settings as django_settings
from django.core.exceptions import ImproperlyConfigured
from django.db import connection

from audit import masking
from audit.ingest import store_batch
from core.models import Decision, LogBatch

SECRET_QUERY = "SELECT password FROM users WHERE name = 'dana'"


def test_hash_keeps_a_stable_digest_and_erase_removes_the_field():
    rules = masking.rules("args.query=hash, user.email=erase, not.there=erase")
    masked, applied = masking.mask({"args": {"query": SECRET_QUERY}, "user": {"id": "u-1", "email": "d@x.io"}},
                                   rules)
    expected = hashlib.sha256(json.dumps(SECRET_QUERY).encode()).hexdigest()
    assert masked == {"args": {"query": f"sha256:{expected}"}, "user": {"id": "u-1"}}
    assert applied == ["args.query=hash", "user.email=erase"]  # absent paths are not claimed


def test_a_bad_mask_setting_is_a_clear_configuration_error():
    with pytest.raises(ImproperlyConfigured, match="path=hash or path=erase"):
        masking.rules("args.query=blur")


@pytest.mark.django_db
def test_masking_happens_before_storage(client, settings):
    settings.GAVEL_MASK = "args.query=hash,user.email=erase"
    event = {"decision_id": "d-mask", "timestamp": "2026-11-27T08:00:00Z", "path": "gavel/x",
             "input": {"args": {"query": SECRET_QUERY}, "user": {"id": "dana", "email": "dana@example.com"}},
             "result": {"allow": False, "reasons": ["no"]}}
    response = client.post("/api/v1/opa/logs", data=gzip.compress(json.dumps([event]).encode()),
                           content_type="application/json",
                           HTTP_AUTHORIZATION=f"Bearer {django_settings.GAVEL_OPA_TOKEN}")
    assert response.status_code == 204
    store_batch(LogBatch.objects.get().pk)

    decision = Decision.objects.get(decision_id="d-mask")
    assert decision.masked == ["args.query=hash", "user.email=erase"]
    assert decision.input["args"]["query"].startswith("sha256:") and "email" not in decision.input["user"]
    assert bytes(LogBatch.objects.get().body_gz) == b""  # the staged copy held the clear text
    with connection.cursor() as cursor:  # nowhere in the database, in any form
        cursor.execute("SELECT count(*) FROM audit_decision WHERE input::text LIKE %s OR input::text LIKE %s",
                       ["%password%", "%dana@example.com%"])
        assert cursor.fetchone()[0] == 0
    assert "user.email=erase" in client_page(client, decision)


def client_page(client, decision):
    from tests.factories import UserFactory

    client.force_login(UserFactory(role="auditor"))
    return client.get(f"/audit/{decision.decision_id}/").content.decode()
