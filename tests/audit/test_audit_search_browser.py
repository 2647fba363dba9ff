"""An auditor narrows the audit trail with a folded filter, opens a decision and asks OPA to
explain it, in a real browser (Debian's Chromium)."""
import re

import pytest
from playwright.sync_api import expect

from core.models import Outcome
from tests.factories import DecisionFactory, PolicyFactory, UserFactory

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_auditor_filters_by_agent_and_explains_a_denial(live_server, opa, page, tmp_path):
    policy = PolicyFactory(name="gateway")
    DecisionFactory(policy=policy, version=policy.latest_version, outcome=Outcome.DENY,
                    reasons=["only admins may do this"],
                    input={"user": {"id": "dana", "role": "intern"}, "agent": {"id": "copilot-7"}})
    DecisionFactory(policy=policy, version=policy.latest_version,
                    input={"user": {"id": "erin", "role": "admin"}, "agent": {"id": "summarizer"}})
    UserFactory(username="audra", role="auditor")

    page.goto(f"{live_server.url}/audit/")
    page.fill("#id_username", "audra")
    page.fill("#id_password", "correct horse battery staple")
    page.click("button[type=submit]")
    page.wait_for_url(re.compile(r"/audit/"))
    count = page.get_by_test_id("result-count")
    expect(count).to_have_text("2 decisions")

    expect(page.locator("#id_agent")).to_be_hidden()  # folded under "More filters"
    page.get_by_text("More filters").click()
    page.fill("#id_agent", "copilot-7")
    expect(count).to_have_text("1 decision")
    expect(page).to_have_url(re.compile(r"/audit/\?agent=copilot-7$"))
    page.screenshot(path=str(tmp_path / "filtered.png"), full_page=True)

    page.locator("table.decisions tbody tr a").first.click()
    page.wait_for_url(re.compile(r"/audit/[0-9a-f-]{36}/$"))
    expect(page.get_by_test_id("explain-fired")).to_have_count(0)  # OPA is asked only on demand
    page.get_by_text("Explain this decision").click()
    fired = page.get_by_test_id("explain-fired")
    expect(fired).to_contain_text('reasons contains "only admins may do this" if not allow')
    expect(page.get_by_test_id("explain-outcome")).to_have_text("Deny")
    page.screenshot(path=str(tmp_path / "explain.png"), full_page=True)
