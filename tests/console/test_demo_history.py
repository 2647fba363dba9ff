"""`seed_demo` gives every demo policy a history: at least two versions, each with Rego tests that
pass in OPA, so the pages have something true to show, a diff in words among them."""
import io

import pytest
from django.contrib.auth import get_user_model
from django.core.management import call_command

from policies import services
from policies.models import Policy

pytestmark = pytest.mark.django_db

CHANGED = {
    "agent_gateway": ("changed", "The rule “Require approval” now requires approval when"),
    "platform_changes": ("changed", "The rule “Require approval” now requires approval when"),
}
ADDED = {"platform_changes": "Added the rule “Admin roles need a ticket”"}


def test_seeded_demo_policies_have_tested_versions_and_a_diff_in_words(client):
    out = io.StringIO()
    call_command("seed_demo", "--publish", stdout=out)  # in a test transaction: queued, never pushed
    assert "with 2 versions" in out.getvalue()
    compliance = get_user_model().objects.get(username="compliance")
    assert compliance.get_full_name() == "Carmen Ortiz"
    client.force_login(compliance)
    for name, (kind, sentence) in CHANGED.items():
        policy = Policy.objects.get(name=name)
        versions = list(policy.versions.order_by("number"))
        assert len(versions) >= 2 and versions[0].message == "Initial version"
        for version in versions:
            run = version.test_run  # `opa test` ran them when the version was saved
            assert run.passed and run.total >= 10, (version, run.results)
        assert services.run_version_tests(versions[-1]).passed  # and they pass again now
        latest, first = versions[-1].number, versions[0].number
        html = client.get(f"/policies/{name}/v{latest}/summary/diff/{first}/").content.decode()
        assert f'<span class="badge sx-kind-{kind}">{kind}</span> <a href' in html
        assert sentence in html, html
        if name in ADDED:
            assert ADDED[name] in html
        evidence = client.get(f"/policies/{name}/v{latest}/evidence/from-v{first}/").content.decode()
        assert sentence in evidence and "Ana Souza (author)" in evidence
        # The published version went through the two-person review, so its evidence has a chain to show.
        chain = client.get(f"/policies/{name}/v{latest}/evidence/").content.decode()
        chain = chain[chain.index('data-testid="approval-chain"'):chain.index('data-testid="runs-in"')]
        assert "Ana Souza (author)" in chain and "Approved by Sam Adeyemi (secadmin)" in chain

    call_command("seed_demo", stdout=io.StringIO())  # safe to run again: nothing is added twice
    assert Policy.objects.get(name="agent_gateway").versions.count() == 2
