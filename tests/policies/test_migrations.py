"""Migration 0007 moves the single active version into the per-environment model without losing
what OPA runs: the old field's version becomes the default environment's, other environments get
their latest confirmed publication, and past publish events name their environment."""
import pytest
from django.db import connections
from django.db.migrations.executor import MigrationExecutor
from django.utils import timezone

BEFORE, AFTER = [("policies", "0006_fleet")], [("policies", "0007_active_version_per_environment")]


@pytest.fixture
def scratch(django_db_blocker):
    """A database of its own, migrated only as far as the test asks. (Migrating the test database
    back to policies 0006 and forward again redid every later migration of every app: minutes.)"""
    default = connections["default"]
    name = f"{default.settings_dict['NAME']}_migrations"
    with django_db_blocker.unblock():
        with default._nodb_cursor() as cursor:
            cursor.execute(f'DROP DATABASE IF EXISTS "{name}"')
            cursor.execute(f'CREATE DATABASE "{name}"')
        connections.settings["migrations"] = {**default.settings_dict, "NAME": name}
        try:
            yield connections["migrations"]
        finally:
            connections["migrations"].close()
            del connections["migrations"]
            del connections.settings["migrations"]
            with default._nodb_cursor() as cursor:
                cursor.execute(f'DROP DATABASE "{name}"')


def migrate(connection, targets):
    """Migrate `connection` to `targets`; returns a function giving each historical model's rows there."""
    executor = MigrationExecutor(connection)
    executor.migrate(targets)
    apps = executor.loader.project_state(targets).apps
    return lambda model: apps.get_model(*model.split(".")).objects.db_manager(connection.alias)


def test_the_active_version_becomes_the_default_environments_and_others_keep_theirs(settings, scratch):
    settings.GAVEL_ENVIRONMENT = "dev"
    old = migrate(scratch, BEFORE)
    user = old("auth.User").create(username="migrator")
    policy = old("policies.Policy").create(name="budget", package="gavel.budget", title="Budget", created_by=user)
    v1, v2 = (old("policies.PolicyVersion").create(policy=policy, number=n, source=f"package gavel.budget\n# {n}\n",
                                                   sha256=f"{n}" * 64, author=user, message="m") for n in (1, 2))
    prod = old("policies.Environment").create(name="prod")
    now = timezone.now()
    publications = old("policies.Publication")
    to_dev = publications.create(version=v2, target_url="http://opa:8181", status="ok", requested_by=user,
                                 confirmed_at=now)
    to_prod = publications.create(version=v1, target_url="http://prod:8181", environment=prod, status="ok",
                                  requested_by=user, confirmed_at=now)
    old("policies.PublishEvent").create(policy=policy, version=v2, action="published", actor=user, publication=to_dev)
    old("policies.PublishEvent").create(policy=policy, version=v1, action="published", actor=user, publication=to_prod)
    old("policies.Policy").filter(pk=policy.pk).update(active_version=v2)

    new = migrate(scratch, AFTER)
    running = {(a.environment.name, a.version.number, a.since)
               for a in new("policies.ActiveVersion").select_related("environment", "version")}
    assert running == {("dev", 2, now), ("prod", 1, now)}
    events = new("policies.PublishEvent").order_by("id")
    assert [(e.version.number, e.environment.name) for e in events] == [(2, "dev"), (1, "prod")]
