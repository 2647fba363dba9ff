"""An auditor logs in with a real browser (Debian's Chromium) and filters the audit trail."""
import re

import pytest
from django.core.management import call_command
from playwright.sync_api import expect

from audit import pagination
from core.models import Outcome
from tests.factories import DecisionFactory

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def demo_password(output: str, username: str) -> str:
    match = re.search(rf"^\s*{username}\s+.*?(\S+)\s*$", output, re.MULTILINE)
    assert match, f"seed_demo did not print a password for {username}:\n{output}"
    return match.group(1)


def test_demo_auditor_filters_the_audit_trail(live_server, page, capsys, tmp_path, monkeypatch):
    call_command("seed_demo")
    password = demo_password(capsys.readouterr().out, "auditor")
    DecisionFactory(outcome=Outcome.DENY, reasons=["token budget 25000 is over 10000"],
                    input={"user": {"id": "dana"}, "tool": "sql.query"})
    DecisionFactory(outcome=Outcome.DENY, reasons=["user <b>mallory</b> is blocked"],
                    input={"user": {"id": "mallory"}})
    for _ in range(3):
        DecisionFactory(outcome=Outcome.ALLOW)

    page.goto(f"{live_server.url}/audit/")
    assert "/login/" in page.url  # login first, then back to the audit trail
    page.fill("#id_username", "auditor")
    page.fill("#id_password", password)
    page.click("button[type=submit]")
    page.wait_for_url(re.compile(r"/audit/"))

    count = page.get_by_test_id("result-count")
    rows = page.locator("table.decisions tbody tr")
    expect(count).to_have_text("5 decisions")

    page.select_option("#id_outcome", "deny")
    expect(count).to_have_text("2 decisions")
    # The search is in the address bar, ready to share, without the empty fields.
    expect(page).to_have_url(re.compile(r"/audit/\?outcome=deny$"))

    page.fill("#id_q", "budget")
    expect(page).to_have_url(re.compile(r"outcome=deny&q=budget$"))
    expect(count).to_have_text("1 decision")
    expect(rows).to_have_count(1)
    expect(rows.first).to_contain_text("token budget 25000 is over 10000")

    page.fill("#id_q", "mallory")
    expect(page).to_have_url(re.compile(r"q=mallory$"))
    # The reason's markup is shown as text, never rendered.
    expect(rows.first).to_contain_text("user <b>mallory</b> is blocked")
    assert page.locator("table.decisions b").count() == 0
    page.screenshot(path=str(tmp_path / "audit-filtered.png"), full_page=True)

    page.locator("table.decisions tbody tr a").first.click()
    page.wait_for_url(re.compile(r"/audit/[0-9a-f-]{36}/"))
    expect(page.locator("pre.json").first).to_contain_text('"id": "mallory"')

    # Past the counted pages the last page reads on after its last decision, and says from where.
    monkeypatch.setattr(pagination, "COUNT_LIMIT", 3)
    page.goto(f"{live_server.url}/audit/")
    expect(rows).to_have_count(4)  # 3 counted and one more: more than the limit
    page.get_by_test_id("read-on").click()
    expect(page).to_have_url(re.compile(r"/audit/\?before=\d{4}-\d\d-\d\dT[\d%A.]+Z%2C\d+$"))
    expect(rows).to_have_count(1)
    expect(page.get_by_test_id("export-form")).to_contain_text("Export this decision as")
    older_than = page.get_by_role("list", name="Filters in use")
    expect(older_than).to_contain_text("Older than:")
    page.screenshot(path=str(tmp_path / "audit-read-on.png"), full_page=True)
    page.get_by_role("link", name="Remove Older than").click()
    expect(rows).to_have_count(4)
