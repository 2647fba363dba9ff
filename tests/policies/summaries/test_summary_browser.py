"""A compliance officer reads the demo gateway policy in a real browser (Debian's Chromium): its
summary, what changed since its first version, and the print views."""
import re

import pytest
from playwright.sync_api import expect

from console.management.commands.seed_demo import HISTORY, demo_files
from policies import services
from tests.factories import UserFactory
from tests.support import shots

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_compliance_officer_reads_the_gateway_summary(live_server, page, tmp_path):
    officer = UserFactory(role="compliance_officer", first_name="Carmen", last_name="Ortiz")
    author = UserFactory(role="policy_author")
    (first, message), (latest, change) = HISTORY["agent_gateway"]  # the demo's two versions, as seed_demo saves them
    source, tests = demo_files("agent_gateway", first)
    policy = services.create_policy(name="agent_gateway", title="AI agent gateway", source=source, tests=tests,
                                    author=author, message=message)
    source, tests = demo_files("agent_gateway", latest)
    services.save_version(policy, source=source, tests=tests, author=author, message=change)

    page.goto(f"{live_server.url}/policies/agent_gateway/v2/summary/")
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
    source = as_written.locator("ol.numbered-source")
    expect(source).to_be_hidden()
    as_written.get_by_text("As written").click()
    expect(source).to_be_visible()
    expect(source).to_contain_text("input.token_budget > max_token_budget")
    row = int(as_written.locator("summary").inner_text().rsplit(" ", 1)[1].rstrip(")"))  # "As written (Rego, line 93)"
    expect(source.locator("li").first).to_have_attribute("data-row", str(row))  # numbered as in the policy
    expect(source.locator("li", has_text="input.token_budget > max_token_budget")).to_have_attribute(
        "data-row", str(row + 1))
    page.screenshot(path=str(shots(tmp_path) / "summary.png"), full_page=True)

    # What changed since version 1, in words, each change by its rule's title.
    page.locator(".sx-compare summary").click()
    page.get_by_role("link", name="changes since version 1").click()
    page.wait_for_url(re.compile(r"/summary/diff/1/$"))
    changes = page.get_by_test_id("diff")
    expect(changes.locator(".sx-changed")).to_have_count(3)
    expect(changes).to_contain_text("The rule “Require approval” now requires approval when no deny rule applies")
    expect(changes).to_contain_text("Max token budget is now 8,000 (was 16,000).")
    assert "New:" not in changes.inner_text()
    page.screenshot(path=str(shots(tmp_path) / "summary-diff.png"), full_page=True)
    page.get_by_test_id("diff-evidence-link").click()
    page.wait_for_url(re.compile(r"/v2/evidence/from-v1/$"))
    expect(page.get_by_role("heading", level=1)).to_contain_text("AI agent gateway")
    page.screenshot(path=str(shots(tmp_path) / "diff-evidence.png"), full_page=True)

    page.goto(f"{live_server.url}/policies/agent_gateway/v2/summary/")
    page.get_by_role("link", name="Print view").click()
    page.wait_for_url(re.compile(r"/summary/print/$"))
    expect(page.get_by_role("heading", level=1)).to_have_text("Policy summary: AI agent gateway")
    expect(page.locator("body")).to_contain_text(f"for Carmen Ortiz ({officer.username}).")
    page.screenshot(path=str(shots(tmp_path) / "print.png"), full_page=True)
