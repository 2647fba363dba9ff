"""Shared fixtures. Everything here is real: the Postgres and Redis that `make test`
started, an `opa run --server` started per test session, and a Celery worker
consuming from Redis in a thread of this process."""
from __future__ import annotations

import fcntl
import json
import os
import time
from pathlib import Path

import pytest
from django.conf import settings
from django.core.management.base import CommandError
from django.db import connection, connections
from django.test import TransactionTestCase
from django.test.utils import override_settings, teardown_databases
from hypothesis import HealthCheck
from hypothesis import settings as hypothesis_settings

from tests import schema_cache
from tests.faults.pipeline import stack_profile
from tests.support import browser_page, decisions_served, read_replica, settle_decision_logs, stack

# Playwright's sync API runs an event loop in the test thread; Django's ORM is safe here.
os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")


@pytest.fixture(scope="session", autouse=True)
def _fast_password_hashing():
    """Every factory user and every login hashes a password; production's PBKDF2 costs a few
    hundred milliseconds of CPU each, which adds minutes to a loaded CI run. Tests hash with MD5;
    PBKDF2 stays second so hashes made by subprocesses (manage.py commands) still verify."""
    with override_settings(PASSWORD_HASHERS=["django.contrib.auth.hashers.MD5PasswordHasher",
                                             "django.contrib.auth.hashers.PBKDF2PasswordHasher"]):
        yield


@pytest.fixture(scope="session")
def stack_services() -> stack.Profile:
    """The scripts/stack.py profile whose Postgres and Redis this run uses, for tests that stop,
    restart or replicate them. Outside `scripts/stack.py exec` those tests fail and say why: a
    skip would hide a broken set-up in CI."""
    profile = stack_profile()
    if profile is None:
        pytest.fail("Postgres and Redis were not started by scripts/stack.py for this run; "
                    "run the tests with `make test` or `scripts/stack.py exec --profile test -- pytest`")
    return profile


@pytest.fixture(scope="module")
def standby(stack_services, django_db_setup, django_db_blocker):
    """The profile's Postgres with a streaming replica, configured as the `replica` database."""
    with read_replica(stack_services):
        yield stack_services


@pytest.fixture(scope="session")
def opa_server(live_server, tmp_path_factory):
    """A real OPA that ships its decision logs to this session's live Gavel server."""
    port = stack.free_port()
    proc = stack.start_opa(
        tmp_path_factory.mktemp("opa"), port, f"{live_server.url}/api/v1/opa", settings.GAVEL_OPA_TOKEN,
        {"environment": "test", "instance": "pytest-opa"},
    )
    yield f"http://127.0.0.1:{port}"
    stack.stop_process(proc, "test OPA")


@pytest.fixture
def opa(opa_server, settings):
    """The test OPA as Gavel's configured OPA_URL; policies Gavel loaded are removed afterwards."""
    from core.opa.client import opa_client

    settings.OPA_URL = opa_server
    served = decisions_served(opa_server)
    yield opa_server
    settle_decision_logs(opa_server, served)
    with opa_client(opa_server) as client:
        for policy_id in client.list_policy_ids():
            if policy_id.startswith(("gavel/", "gavel_entry/")):
                client.delete_policy(policy_id)
        client.put_data("gavel_config", {})
        client.put_data("gavel_approvals", {})


@pytest.fixture(scope="session")
def celery_worker(django_db_setup, django_db_blocker):
    """A real Celery worker (solo pool, in a thread) consuming from the test Redis."""
    from celery.contrib.testing.worker import start_worker

    from console.celery import app

    with django_db_blocker.unblock():
        with start_worker(app, pool="solo", perform_ping_check=False, loglevel="WARNING",
                          shutdown_timeout=30) as worker:
            yield worker


def _flush_retrying_a_deadlock(flush):
    """A transactional test's flush (TRUNCATE of every table) can deadlock with a write still
    arriving from the OPA or worker the test started; Postgres aborts one side, so try again."""
    def teardown(self):
        for attempt in range(3):
            try:
                return flush(self)
            except CommandError as error:
                if "deadlock" not in str(error.__cause__) or attempt == 2:
                    raise
                time.sleep(1)
    return teardown


TransactionTestCase._fixture_teardown = _flush_retrying_a_deadlock(TransactionTestCase._fixture_teardown)

# The machines are shared and noisy: how fast an example is drawn or runs says nothing about
# correctness here, so neither fails a test (tests set their own example counts).
hypothesis_settings.register_profile("gavel", deadline=None, suppress_health_check=[HealthCheck.too_slow])
hypothesis_settings.load_profile("gavel")


@pytest.fixture(scope="session")
def django_db_modify_db_settings(django_db_modify_db_settings_parallel_suffix):
    """The activity log's tables refuse TRUNCATE (activity/tracking.py) unless the session allows
    it; the flush after each transactional test truncates every table, so test sessions do."""
    options = settings.DATABASES["default"].setdefault("OPTIONS", {})
    options["options"] = f"{options.get('options', '')} -c gavel.activity_truncate=allow".strip()


@pytest.fixture(scope="session")
def django_db_setup(django_test_environment, django_db_blocker, django_db_modify_db_settings):
    """pytest-django's, but the migrated schema is dumped once and restored after that
    (tests/schema_cache.py); the test database is dropped at the end as usual."""
    with django_db_blocker.unblock():
        config = schema_cache.set_up_test_database()
    yield
    with django_db_blocker.unblock():
        teardown_databases(config, verbosity=0)


@pytest.fixture(scope="session", autouse=True)
def _end_stray_connections(django_db_setup, django_db_blocker):
    """Connections of the worker and live-server threads outlive them; end them at the end of
    the session so the test database can be dropped."""
    yield
    # The fault tests restart Postgres: a connection this thread still holds may be dead. Open anew.
    connections.close_all()
    with django_db_blocker.unblock(), connection.cursor() as cursor:
        cursor.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                       "WHERE datname = current_database() AND pid <> pg_backend_pid()")


@pytest.fixture
def make_user(db):
    """make_user("auditor") -> a user in that role's group."""
    from tests.factories import UserFactory

    return lambda role=None, **kwargs: UserFactory(role=role, **kwargs)


@pytest.fixture(scope="session")
def browser():
    """Debian's Chromium, driven by Playwright; never a downloaded browser."""
    from playwright.sync_api import sync_playwright

    executable = os.environ.get("CHROMIUM_PATH", "/usr/bin/chromium")
    if not Path(executable).exists():
        pytest.fail(f"Chromium not found at {executable}: apt-get install -y chromium (or set CHROMIUM_PATH)")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=executable,
            args=["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                  "--disable-sync", "--no-first-run", "--disable-quic"],
        )
        yield browser
        browser.close()


@pytest.fixture
def page(browser):
    with browser_page(browser, 1360, 900) as page:
        yield page


# How long each test file takes, so scripts/test_shards.py can deal files evenly to shards.
# Recorded into tests/durations.json when GAVEL_RECORD_DURATIONS=1 (shards merge under a lock).
_seconds_per_file: dict[str, float] = {}


def pytest_runtest_logreport(report):
    name = report.nodeid.split("::")[0]
    _seconds_per_file[name] = _seconds_per_file.get(name, 0.0) + report.duration


def pytest_sessionfinish(session):
    if not os.environ.get("GAVEL_RECORD_DURATIONS") or not _seconds_per_file:
        return
    with open(Path(__file__).parent / "durations.json", "a+") as recorded:
        fcntl.flock(recorded, fcntl.LOCK_EX)
        recorded.seek(0)
        durations = json.loads(recorded.read() or "{}")
        durations.update({name: round(seconds, 1) for name, seconds in _seconds_per_file.items()})
        recorded.seek(0)
        recorded.truncate()
        json.dump(durations, recorded, indent=1, sort_keys=True)
        recorded.write("\n")
