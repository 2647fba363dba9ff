"""Who, which agent, what action on what resource: read out of each decision's input at
ingest, so the audit search filters on plain indexed columns instead of digging in JSON."""
import gzip
import json

import pytest
from django.conf import settings as django_settings

from audit.ingest import store_batch
from core import facts as fields
from core.models import Decision, LogBatch


def test_the_first_path_holding_a_plain_value_wins():
    request = {"user": {"id": "dana"}, "agent": "copilot-7", "tool": "sql.query", "resource_type": "database",
               "reason": "quarterly report"}
    facts = fields.extract(request, ["budget exceeded"])
    assert facts["user"] == "dana" and facts["agent"] == "copilot-7"
    assert facts["action"] == "sql.query" and facts["resource"] == "database"
    assert facts["search_text"].splitlines() == ["budget exceeded", "sql.query", "database", "dana",
                                                 "quarterly report"]


def test_objects_lists_and_missing_paths_are_not_facts():
    assert fields.extract({"user": {"roles": ["admin"]}, "action": ["a", "b"]}, []) == {
        "user": "", "agent": "", "action": "", "resource": "", "search_text": ""}
    assert fields.extract("not an object", ["r"])["search_text"] == "r"


@pytest.mark.django_db
def test_ingest_stores_the_facts_from_the_masked_input(client, settings):
    settings.GAVEL_MASK = "user.id=hash"
    event = {"decision_id": "d-facts", "timestamp": "2026-11-27T08:00:00Z", "path": "gavel/x",
             "labels": {"id": "4f1c", "instance": "opa-eu-1", "environment": "prod"},
             "input": {"user": {"id": "dana"}, "agent": {"id": "copilot-7"}, "action": "delete",
                       "resource": {"id": "db/orders"}},
             "result": {"allow": False, "reasons": ["deleting production data needs a ticket"]}}
    response = client.post("/api/v1/opa/logs", data=gzip.compress(json.dumps([event]).encode()),
                           content_type="application/json",
                           HTTP_AUTHORIZATION=f"Bearer {django_settings.GAVEL_OPA_TOKEN}")
    assert response.status_code == 204
    store_batch(LogBatch.objects.get().pk)

    decision = Decision.objects.get(decision_id="d-facts")
    assert (decision.agent, decision.action, decision.resource) == ("copilot-7", "delete", "db/orders")
    assert decision.user.startswith("sha256:")  # masked before it was read out
    assert "dana" not in decision.search_text
    assert (decision.environment, decision.instance) == ("prod", "opa-eu-1")
    assert Decision.objects.filter(search="ticket").count() == 1  # the full-text vector is Postgres-generated
