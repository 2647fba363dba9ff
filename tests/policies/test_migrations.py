"""Migration 0007 moves the single active version into the per-environment model without losing
what OPA runs: the old field's version becomes the default environment's, other environments get
their latest confirmed publication, and past publish events name their environment."""
import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor
from django.utils import timezone

pytestmark = pytest.mark.django_db(transaction=True)
BEFORE, AFTER = [("policies", "0006_fleet")], [("policies", "0007_active_version_per_environment")]


def migrate(targets):
    executor = MigrationExecutor(connection)
    executor.loader.build_graph()
    executor.migrate(targets)
    return executor.loader.project_state(targets).apps


@pytest.fixture
def back_to_latest():
    yield
    migrate(MigrationExecutor(connection).loader.graph.leaf_nodes())  # the schema the other tests expect


def test_the_active_version_becomes_the_default_environments_and_others_keep_theirs(settings, back_to_latest):
    settings.GAVEL_ENVIRONMENT = "dev"
    old = migrate(BEFORE)
    User = old.get_model("auth", "User")
    Policy, Version = old.get_model("policies", "Policy"), old.get_model("policies", "PolicyVersion")
    Environment, Publication = old.get_model("policies", "Environment"), old.get_model("policies", "Publication")
    PublishEvent = old.get_model("policies", "PublishEvent")
    user = User.objects.create(username="migrator")
    policy = Policy.objects.create(name="budget", package="gavel.budget", title="Budget", created_by=user)
    v1, v2 = (Version.objects.create(policy=policy, number=n, source=f"package gavel.budget\n# {n}\n",
                                     sha256=f"{n}" * 64, author=user, message="m") for n in (1, 2))
    prod = Environment.objects.create(name="prod")
    now = timezone.now()
    to_dev = Publication.objects.create(version=v2, target_url="http://opa:8181", status="ok", requested_by=user,
                                        confirmed_at=now)
    to_prod = Publication.objects.create(version=v1, target_url="http://prod:8181", environment=prod, status="ok",
                                         requested_by=user, confirmed_at=now)
    PublishEvent.objects.create(policy=policy, version=v2, action="published", actor=user, publication=to_dev)
    PublishEvent.objects.create(policy=policy, version=v1, action="published", actor=user, publication=to_prod)
    Policy.objects.filter(pk=policy.pk).update(active_version=v2)

    new = migrate(AFTER)
    ActiveVersion = new.get_model("policies", "ActiveVersion")
    running = {(a.environment.name, a.version.number, a.since) for a in ActiveVersion.objects.select_related(
        "environment", "version")}
    assert running == {("dev", 2, now), ("prod", 1, now)}
    events = new.get_model("policies", "PublishEvent").objects.order_by("id")
    assert [(e.version.number, e.environment.name) for e in events] == [(2, "dev"), (1, "prod")]
