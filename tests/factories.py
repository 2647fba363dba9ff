"""factory-boy factories: how tests (and readers) build Gavel's data."""
import gzip
import json
import uuid
from datetime import datetime, timedelta

import factory
from django.contrib.auth.models import Group, User
from django.db import connection
from django.utils import timezone

from core import facts as fields
from core import partitions, store
from core.models import Decision, LogBatch, Outcome
from policies import services

SIMPLE_POLICY = """package gavel.{name}

default allow := false

allow if input.user.role == "admin"

reasons contains "only admins may do this" if not allow

decision := {{"allow": allow, "reasons": reasons}}
"""


class UserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = User
        skip_postgeneration_save = True

    username = factory.Sequence(lambda n: f"user{n}")
    password = factory.django.Password("correct horse battery staple")

    @factory.post_generation
    def role(self, create, role, **kwargs):
        if role:
            self.groups.add(Group.objects.get(name=role))


class PolicyFactory(factory.Factory):
    """A policy with a first version, created the way a policy author does: compiled by OPA."""

    class Meta:
        model = services.create_policy

    name = factory.Sequence(lambda n: f"sample_{n}")
    title = factory.LazyAttribute(lambda o: o.name.replace("_", " ").capitalize())
    source = factory.LazyAttribute(lambda o: SIMPLE_POLICY.format(name=o.name))
    author = factory.SubFactory(UserFactory, role="policy_author")
    message = "Initial version"


class DecisionFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Decision

    decision_id = factory.LazyFunction(lambda: str(uuid.uuid4()))
    # Newest first in creation order, always within the last hour (the counter grows over a whole run).
    timestamp = factory.Sequence(lambda n: timezone.now() - timedelta(seconds=n % 3600))
    path = "gavel/agent_gateway/decision"
    input = factory.Sequence(lambda n: {"user": {"id": f"u-{n}"}, "tool": "search.web"})
    outcome = Outcome.ALLOW
    result = factory.LazyAttribute(lambda o: {"allow": o.outcome == Outcome.ALLOW, "reasons": o.reasons})
    reasons = factory.List([])
    # What ingest reads out of the input (core/facts.py), so searches find factory-built rows too.
    user = factory.LazyAttribute(lambda o: fields.extract(o.input, o.reasons)["user"])
    agent = factory.LazyAttribute(lambda o: fields.extract(o.input, o.reasons)["agent"])
    action = factory.LazyAttribute(lambda o: fields.extract(o.input, o.reasons)["action"])
    resource = factory.LazyAttribute(lambda o: fields.extract(o.input, o.reasons)["resource"])
    search_text = factory.LazyAttribute(lambda o: fields.extract(o.input, o.reasons)["search_text"])

    @classmethod
    def _create(cls, model_class, *args, **kwargs):
        """Stored the one way decisions are: core.store.insert (partitions, rollups, approvals)."""
        decision = model_class(*args, **kwargs)
        store.insert([decision])
        return decision


def copy_kept_before_ids_were_unique(decision: Decision, environment: str, timestamp: datetime) -> None:
    """A copy of a stored decision in another environment or at another time, as Gavel stored them
    before an id was kept once (core/store.py): such rows remain, and pages and upgrades meet them."""
    partitions.ensure([(environment, timestamp)])
    columns = ", ".join(f'"{f.column}"' for f in store.COPY_FIELDS if f.column not in ("environment", "timestamp"))
    with connection.cursor() as cursor:
        cursor.execute(f"INSERT INTO audit_decision ({columns}, environment, timestamp) "
                       f"SELECT {columns}, %s, %s FROM audit_decision WHERE id = %s",
                       [environment, timestamp, decision.pk])


class EnvironmentFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = "fleet.Environment"
        django_get_or_create = ("name",)

    name = factory.Sequence(lambda n: f"env-{n}")


class OpaInstanceFactory(factory.django.DjangoModelFactory):
    """An OPA instance; give it a token to Gavel with fleet.credentials.issue_token."""

    class Meta:
        model = "fleet.OpaInstance"

    environment = factory.SubFactory(EnvironmentFactory)
    name = factory.Sequence(lambda n: f"opa-{n}")


class LogBatchFactory(factory.django.DjangoModelFactory):
    """A decision-log upload as the web process stages it: OPA's gzip body, queued for the worker.
    LogBatchFactory(events=3, age=120) stages three fresh decisions, received two minutes ago."""

    class Meta:
        model = LogBatch

    class Params:
        events = 1

    age = 0  # seconds since it was received (taken out in _create)

    body_gz = factory.LazyAttribute(lambda o: gzip.compress(json.dumps([
        {"decision_id": str(uuid.uuid4()), "timestamp": timezone.now().isoformat(), "path": "gavel/x/allow",
         "result": True} for _ in range(o.events)]).encode()))
    event_count = factory.SelfAttribute("events")

    @classmethod
    def _create(cls, model_class, *args, age=0, **kwargs):
        batch = super()._create(model_class, *args, **kwargs)
        if age:  # received_at is auto_now_add: backdate it once the row exists
            batch.received_at = timezone.now() - timedelta(seconds=age)
            model_class.objects.filter(pk=batch.pk).update(received_at=batch.received_at)
        return batch


class PublicationFactory(factory.django.DjangoModelFactory):
    """A version confirmed running on an OPA: PublicationFactory(version=v, environment=prod,
    confirmed_at=t) is what a publish leaves for each instance once OPA accepted it."""

    class Meta:
        model = "policies.Publication"

    target_url = "http://opa:8181"
    status = "ok"
    confirmed_at = factory.LazyFunction(timezone.now)
    requested_by = factory.LazyAttribute(lambda o: o.version.author)
