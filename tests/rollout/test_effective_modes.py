"""The effective mode, kill switch included, on every rollout table and as a banner on every page;
dry-run decisions that would have needed approval are an outcome of their own, found and counted."""
import pytest

from core.models import Outcome
from fleet.models import Environment
from rollout import canary, services
from rollout.models import Mode
from tests.factories import DecisionFactory, PolicyFactory

pytestmark = pytest.mark.django_db


def test_the_mode_in_words_counts_the_percentage_and_the_kill_switch():
    assert canary.Rollout(Mode.DRY_RUN, 75).summary() == "enforced for 75 %, dry-run for the others"
    assert canary.Rollout(Mode.DRY_RUN, 75).effective() == Mode.DRY_RUN
    assert canary.Rollout(Mode.OFF, 100).effective() == Mode.ENFORCE
    assert canary.Rollout().summary(kill_switch=True) == "dry-run for everyone: kill switch engaged"


def test_every_page_shows_an_engaged_kill_switch_to_every_role(client, make_user):
    admin = make_user("security_admin", username="sam")
    environment = Environment.objects.default()
    services.set_kill_switch(environment, engaged=True, changed_by=admin, reason="<i>incident 7</i>")
    for role, url in (("compliance_officer", "/policies/"), ("auditor", "/audit/"), ("reviewer", "/approvals/"),
                      ("policy_author", "/exceptions/")):
        client.force_login(make_user(role))
        page = client.get(url).content.decode()
        assert 'data-testid="kill-switch-banner"' in page, role
        assert "&lt;i&gt;incident 7&lt;/i&gt;" in page and f"in {environment.name}" in page
    services.set_kill_switch(environment, engaged=False, changed_by=admin, reason="resolved")
    assert 'data-testid="kill-switch-banner"' not in client.get("/exceptions/").content.decode()


def test_would_require_approval_is_searchable_and_counted_by_the_preview(client, make_user):
    policy = PolicyFactory(name="budget")
    held = DecisionFactory(policy=policy, input={"user": {"id": "u-1"}}, outcome=Outcome.WOULD_REQUIRE_APPROVAL,
                           effective_mode="dry-run")
    DecisionFactory(policy=policy, input={"user": {"id": "u-2"}}, outcome=Outcome.ALLOW)
    client.force_login(make_user("security_admin"))
    found = client.get("/audit/", {"outcome": Outcome.WOULD_REQUIRE_APPROVAL}).content.decode()
    assert held.decision_id in found and "Dry-run: would require approval" in found
    response = client.post(f"/rollout/{Environment.objects.default().name}/budget/preview/", {
        "mode": "enforce", "enforce_percentage": 0, "user_field": "user.id", "agent_field": "agent.id"})
    assert response.context["preview"].enforced_held == 1
    assert 'data-testid="preview-held"' in response.content.decode()
