"""A compliance officer reads the demo gateway policy in a real browser (Debian's Chromium)."""
import re
from pathlib import Path

import pytest
from playwright.sync_api import expect

from policies import services
from tests.factories import UserFactory

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_compliance_officer_reads_the_gateway_summary(live_server, page, tmp_path):
    officer = UserFactory(role="compliance_officer")
    services.create_policy(name="agent_gateway", title="AI agent gateway",
                           source=Path("console/demo/policies/agent_gateway.rego").read_text(),
                           author=UserFactory(role="policy_author"), message="Initial version")

    page.goto(f"{live_server.url}/policies/agent_gateway/v1/summary/")
    assert "/login/" in page.url
    page.fill("#id_username", officer.username)
    page.fill("#id_password", "correct horse battery staple")
    page.click("button[type=submit]")
    page.wait_for_url(re.compile(r"/summary/$"))

    expect(page.get_by_role("heading", level=1)).to_have_text("What “AI agent gateway” says")
    for heading in ("Denies when…", "Requires approval when…", "Allows when…", "Lists and limits defined in this policy"):
        expect(page.get_by_role("heading", name=heading)).to_be_visible()
    budget = page.locator("#deny-4")
    expect(budget).to_contain_text("the request's token budget is more than 8,000 (max token budget)")
    expect(budget).to_contain_text("This request is denied: token budget 8001 exceeds the limit of 8000.")
    expect(page.get_by_test_id("rollout")).to_contain_text("How it is enforced now")
    assert page.locator("pre.rego").count() == 0  # everything in the demo policy reads as English
    # The Rego is there, but only behind each rule's "As written" toggle.
    as_written = budget.get_by_test_id("as-written")
    expect(as_written.locator("pre")).to_be_hidden()
    as_written.get_by_text("As written").click()
    expect(as_written.locator("pre")).to_be_visible()
    expect(as_written.locator("pre")).to_contain_text("input.token_budget > max_token_budget")
    page.screenshot(path=str(tmp_path / "summary.png"), full_page=True)

    page.get_by_role("link", name="Print view").click()
    page.wait_for_url(re.compile(r"/summary/print/$"))
    expect(page.get_by_role("heading", level=1)).to_have_text("Policy summary: AI agent gateway")
    page.screenshot(path=str(tmp_path / "print.png"), full_page=True)
