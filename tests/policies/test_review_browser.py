"""A security admin reviews a version in a real browser: its tests, lint warnings, the pending
request, and the impact replay, which htmx loads into the page."""
import re

import pytest
from playwright.sync_api import expect

from core.models import Outcome
from policies import review, services
from tests.factories import PolicyFactory, UserFactory
from tests.policies.test_replay import CANDIDATE, CURRENT, record

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

TESTS = """package gavel.tool_access_test

import data.gavel.tool_access

test_mallory_is_blocked if not tool_access.allow with input as {"user": "mallory", "tokens": 1}

test_small_budgets_pass if tool_access.allow with input as {"user": "u-1", "tokens": 10}
"""
EMERGENCY = CANDIDATE.replace("allow if count(deny) == 0\n", "allow if count(deny) == 0\n\nallow if input.emergency == true\n")


def test_admin_reviews_a_version_and_replays_its_impact(opa, live_server, page, tmp_path):
    author, admin = UserFactory(role="policy_author"), UserFactory(role="security_admin")
    policy = PolicyFactory(name="tool_access", source=CURRENT, author=author, tests=TESTS)
    for n in range(3):
        record(policy, f"u-{n}", 8000, Outcome.ALLOW)
    record(policy, "suspended-7", 100, Outcome.DENY, ["user is blocked"])
    version = services.save_version(policy, source=EMERGENCY, tests=TESTS, author=author, message="budget 6000")
    review.request_publish(version, requested_by=author, reason="Finance asked for a <b>lower</b> budget")

    page.goto(f"{live_server.url}/policies/tool_access/v2/")
    page.fill("#id_username", admin.username)
    page.fill("#id_password", "correct horse battery staple")
    page.click("button[type=submit]")
    page.wait_for_url(re.compile(r"/v2/$"))

    expect(page.locator("#tests")).to_contain_text("2 passed")
    expect(page.get_by_test_id("coverage")).to_contain_text("coverage")
    expect(page.get_by_test_id("lint-warnings")).to_contain_text("allow-over-deny")
    expect(page.get_by_test_id("publish-request")).to_contain_text("Finance asked for a <b>lower</b> budget")
    expect(page.get_by_role("button", name="Approve and publish")).to_be_visible()

    page.get_by_role("button", name="Replay").click()
    expect(page.get_by_test_id("replay-changed")).to_have_text("4")
    expect(page.get_by_test_id("replay-group-allow_to_deny")).to_contain_text("3")
    expect(page.get_by_test_id("replay-group-deny_to_allow")).to_contain_text("1")
    page.screenshot(path=str(tmp_path / "version.png"), full_page=True)

    page.select_option("#against", "1")
    page.get_by_role("button", name="Show diff").click()
    page.wait_for_url(re.compile(r"/v2/diff/\?against=1$"))
    expect(page.locator("tr.add").first).to_be_visible()
    page.screenshot(path=str(tmp_path / "diff.png"), full_page=True)
