"""`gavel replay --fail-on-change`, the impact gate without database access: the real command
replays the decisions recorded for a policy (here, CI checks of the demo plans) through a
version, exits 1 when any would change and 0 when none would."""
from __future__ import annotations

import pytest

from policies import services
from policies.models import Policy
from tests.checks.cli import DEMO, ENV, FAILING, PASSING, run_gavel
from tests.factories import UserFactory

# Tests read in a transaction of their own (rolled back); the world the server sees is committed.
pytestmark = pytest.mark.django_db


@pytest.fixture(scope="module")
def candidate(world, django_db_blocker):
    """Decisions recorded by two checks through version 1, and a version 2 that lets public-read buckets be."""
    source = (DEMO / "policies" / "provisioning.rego").read_text()
    relaxed = source.replace('public_acls := {"public-read", ', "public_acls := {")
    assert relaxed != source
    with django_db_blocker.unblock():  # the live server's thread reads the database too
        for plan in (FAILING, PASSING):
            assert run_gavel(world, "check", plan, "--env", ENV).returncode in (0, 1)
        policy = Policy.objects.get(name="provisioning")
        return services.save_version(policy, source=relaxed, author=UserFactory(role="policy_author"),
                                     message="public-read is fine").number


def test_replay_fails_on_change_when_a_recorded_decision_would_change(world, candidate):
    done = run_gavel(world, "replay", "--policy", "provisioning", "--version", str(candidate), "--env", ENV,
                     "--fail-on-change")
    assert done.returncode == 1, done.stdout + done.stderr
    assert f"provisioning v{candidate}: 2 decisions replayed against {ENV} v1, 1 would change" in done.stdout
    assert "reasons_changed: 1" in done.stdout  # FAIL still, without the public ACL
    # Without --fail-on-change it reports and passes.
    assert run_gavel(world, "replay", "--policy", "provisioning", "--version", str(candidate)).returncode == 0


def test_replay_passes_when_nothing_would_change(world, candidate):
    done = run_gavel(world, "replay", "--policy", "provisioning", "--version", "1", "--fail-on-change")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "provisioning v1: 2 decisions replayed, 0 would change" in done.stdout


def test_replay_of_a_version_that_does_not_exist_could_not_check(world, candidate):
    done = run_gavel(world, "replay", "--policy", "provisioning", "--version", "99", "--fail-on-change")
    assert done.returncode == 2 and "provisioning has no version 99" in done.stderr
