"""The running Gavel the CI-check tests point the real `gavel` and conftest at."""
from __future__ import annotations

import pytest
from django.core.management import call_command
from django.utils import timezone
from pytest_django.live_server_helper import LiveServer
from rest_framework.authtoken.models import Token

from fleet.models import Environment
from policies import services
from policies.models import ActiveVersion
from tests.checks.cli import DEMO, ENV
from tests.factories import UserFactory


@pytest.fixture(scope="module")
def world(django_db_setup, django_db_blocker):
    """A live Gavel of its own (not pytest-django's live_server, which flushes after every test),
    an environment running the demo provisioning policy, and a CI service account's token."""
    server = LiveServer("127.0.0.1")
    with django_db_blocker.unblock():
        author = UserFactory(role="policy_author")
        policy = services.create_policy(
            name="provisioning", title="Provisioning", author=author, message="v1",
            source=(DEMO / "policies" / "provisioning.rego").read_text(),
            tests=(DEMO / "policies" / "provisioning_test.rego").read_text())
        environment = Environment.objects.create(name=ENV)
        ActiveVersion.objects.create(policy=policy, environment=environment, version=policy.latest_version,
                                     since=timezone.now())
        ci_user = UserFactory(role="ci_pipeline", username="ci-bot")
        token = Token.objects.create(user=ci_user).key
        auditor_token = Token.objects.create(user=UserFactory(role="auditor")).key
    yield {"url": server.url, "token": token, "auditor_token": auditor_token, "username": "ci-bot"}
    server.stop()
    with django_db_blocker.unblock():
        call_command("flush", interactive=False, verbosity=0)
