"""`gavel check` applies the environment's exceptions as its enforcement points do: an approved,
unexpired exception waives the denials it covers (exit 0, and each waived denial printed as EXCP
with the exception that waived it); an expired or a still pending one waives nothing."""
from __future__ import annotations

import json
from datetime import timedelta

import pytest
from django.utils import timezone

from core.models import CI_INSTANCE, Decision
from fleet.models import Environment
from policies.models import ActiveVersion, Policy
from rollout.models import PolicyException
from tests.checks.cli import ENV, FAILING, run_gavel
from tests.factories import UserFactory

ENCRYPTION = "S3 bucket my-bucket must have server-side encryption enabled"
PUBLIC_ACL = "S3 bucket public-site must not have a public ACL (public-read)"
PLAN = [{"field": "terraform_version", "value": "1.9.8"}]  # what tfplan.json says


# Tests read in a transaction of their own (rolled back); the world the server sees is committed.
pytestmark = pytest.mark.django_db


@pytest.fixture(scope="module")
def environments(world, django_db_blocker):
    """Three more environments running the same version, each with its exceptions (committed: the
    live Gavel reads them on its own connection): `waived` one for every denial of this plan,
    `partly` one for its public ACL only, `lapsed` an expired one and one still pending."""
    made = {}
    with django_db_blocker.unblock():
        policy = Policy.objects.get(name="provisioning")
        requester, approver = UserFactory(role="policy_author"), UserFactory(role="security_admin")
        now = timezone.now()

        def exception(environment, *, reason_contains="", approved=True, expires_at=now + timedelta(days=7)):
            return PolicyException.objects.create(
                policy=policy, environment=environment, match=PLAN, reason_contains=reason_contains,
                justification="legacy site until Q3", ticket="SEC-42", expires_at=expires_at, requested_by=requester,
                approved_by=approver if approved else None, approved_at=now - timedelta(days=8) if approved else None)

        for name in ("waived", "partly", "lapsed"):
            environment = Environment.objects.create(name=f"{ENV}-{name}")
            ActiveVersion.objects.create(policy=policy, environment=environment, version=policy.latest_version,
                                         since=now)
            made[name] = environment.name
        made["waived_by"] = exception(Environment.objects.get(name=made["waived"])).pk
        made["partly_by"] = exception(Environment.objects.get(name=made["partly"]), reason_contains="public ACL").pk
        lapsed = Environment.objects.get(name=made["lapsed"])
        exception(lapsed, expires_at=now - timedelta(minutes=1))
        exception(lapsed, approved=False)
    return made


def test_an_approved_unexpired_exception_waives_the_denials_it_covers(world, environments):
    waived_by = environments["waived_by"]
    done = run_gavel(world, "check", FAILING, "--env", environments["waived"], env={"GAVEL_CI_COMMIT": "waived-1"})
    assert done.returncode == 0, done.stdout + done.stderr
    lines = done.stdout.splitlines()
    assert f"EXCP - {FAILING} - gavel.provisioning - {ENCRYPTION} (waived by exception #{waived_by})" in lines
    assert f"EXCP - {FAILING} - gavel.provisioning - {PUBLIC_ACL} (waived by exception #{waived_by})" in lines
    assert not [line for line in lines if line.startswith("FAIL")]
    assert "1 test, 1 passed, 0 warnings, 0 failures, 1 exception" in lines
    # The audit trail says which exception let it through.
    stored = Decision.objects.get(instance=CI_INSTANCE, labels__commit="waived-1")
    assert stored.outcome == "allow" and stored.result["exceptions_applied"] == [waived_by]


def test_an_exception_for_one_denial_leaves_the_others(world, environments):
    done = run_gavel(world, "check", FAILING, "--env", environments["partly"], "--output", "json")
    assert done.returncode == 1, done.stdout + done.stderr
    (result,) = json.loads(done.stdout)["results"]
    assert result["failures"] == [ENCRYPTION]
    assert result["waived"] == [{"message": PUBLIC_ACL, "exceptions": [environments["partly_by"]]}]


def test_an_expired_or_pending_exception_waives_nothing(world, environments):
    done = run_gavel(world, "check", FAILING, "--env", environments["lapsed"])
    assert done.returncode == 1, done.stdout + done.stderr
    assert f"FAIL - {FAILING} - gavel.provisioning - {ENCRYPTION}" in done.stdout.splitlines()
    assert "EXCP" not in done.stdout
    assert "1 test, 0 passed, 0 warnings, 1 failure, 0 exceptions" in done.stdout
