"""The console as its users meet it in a real browser (Debian's Chromium): a phone-width window,
a user name as long as a directory allows, decision data that carries markup and right-to-left
overrides, empty lists, and a page outside one's role."""
import re

import pytest
from playwright.sync_api import expect

from core.models import Outcome
from tests.factories import DecisionFactory, UserFactory
from tests.support import browser_page

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

LONG_NAME = ("maximilian.featherstonehaugh-wolfeschlegelsteinhausenbergerdorff.the-third"
             "@subsidiary-with-a-long-name.example.com")
HOSTILE_IDS = (LONG_NAME * 2, "\u202eevil-user مستخدم-עברית", '<img src=x onerror=alert(1)><b>bold</b>')


def log_in(page, live_server, username, path="/"):
    page.goto(f"{live_server.url}{path}")
    page.fill("#id_username", username)
    page.fill("#id_password", "correct horse battery staple")
    page.click("button[type=submit]")
    page.wait_for_url(re.compile(re.escape(path) + r"$"))


def page_width(page) -> int:
    return page.evaluate("document.documentElement.scrollWidth")


@pytest.fixture
def narrow(browser):
    """A phone-sized window."""
    with browser_page(browser, 400, 800) as page:
        yield page


def test_at_400px_a_long_user_name_and_hostile_decisions_stay_within_the_screen(live_server, narrow, tmp_path):
    UserFactory(username=LONG_NAME, role="auditor")
    for user_id in HOSTILE_IDS:
        DecisionFactory(outcome=Outcome.DENY, input={"user": {"id": user_id}, "tool": "kb.search"},
                        reasons=[f"user {user_id} may not call kb.search " + "x" * 200])
    log_in(narrow, live_server, LONG_NAME)

    # The top bar keeps the name to one line, cut, with the whole name in its title.
    name = narrow.get_by_test_id("username")
    expect(name).to_have_attribute("title", LONG_NAME)
    assert name.bounding_box()["width"] < 200
    for path in ("/", "/audit/", "/audit/dashboard/", "/activity/", "/policies/", "/approvals/"):
        narrow.goto(f"{live_server.url}{path}")
        expect(narrow.get_by_role("navigation").first).to_be_visible()
        assert page_width(narrow) <= 400, f"{path} is {page_width(narrow)}px wide at 400px"
    narrow.goto(f"{live_server.url}/audit/")
    narrow.locator("table.decisions tbody tr a").first.click()
    narrow.wait_for_url(re.compile(r"/audit/[0-9a-f-]{36}/$"))
    assert page_width(narrow) <= 400
    narrow.screenshot(path=str(tmp_path / "decision-400.png"), full_page=True)


def test_the_activity_log_fits_a_1280px_screen(live_server, page):
    page.set_viewport_size({"width": 1280, "height": 800})
    UserFactory(username="audra", role="auditor")
    UserFactory(username=LONG_NAME, role="policy_author")  # the log records the new user and its groups
    log_in(page, live_server, "audra", "/activity/")
    expect(page.get_by_test_id("activity-row").first).to_be_visible()
    assert page_width(page) <= 1280


def test_a_reason_with_markup_is_charted_as_text(live_server, page):
    DecisionFactory(outcome=Outcome.DENY, reasons=["agent <b>bold</b> denied"])
    UserFactory(username="audra", role="auditor")
    log_in(page, live_server, "audra", "/audit/dashboard/")
    ticks = page.get_by_test_id("chart-reasons").locator(".ytick text")
    expect(ticks.first).to_have_text("agent <b>bold</b> denied")  # short: long labels end in …
    # Plotly draws <b> as a bold tspan; there is none, and no link either.
    assert page.get_by_test_id("chart-reasons").locator(".ytick tspan[style*=bold], .ytick a").count() == 0
    expect(page.get_by_test_id("chart-period")).to_contain_text("1 decision from")

    page.goto(f"{live_server.url}/audit/dashboard/?user=nobody")
    expect(page.get_by_test_id("charts-empty")).to_contain_text("No decisions match these filters")
    expect(page.locator(".chart")).to_have_count(0)


def test_an_empty_approvals_queue_says_what_it_means(live_server, page):
    UserFactory(username="rhea", role="reviewer")
    log_in(page, live_server, "rhea", "/approvals/")
    empty = page.get_by_test_id("queue-empty")
    expect(empty).to_contain_text("Nothing is waiting for review.")
    expect(empty).to_contain_text("rejected automatically")
    expect(page.get_by_test_id("read-only")).to_have_count(0)  # a reviewer decides

    page.fill("#id_requester", "nobody")
    page.get_by_role("button", name="Search", exact=True).click()  # not "Save this search"
    expect(empty).to_contain_text("No held action here matches this search.")
    empty.get_by_role("link", name="Clear the search").click()
    expect(page).to_have_url(re.compile(r"/approvals/\?status=pending$"))
    expect(empty).to_contain_text("Nothing is waiting for review.")


def test_the_home_figures_add_up_and_open_their_own_search(live_server, page):
    for outcome, n in ((Outcome.ALLOW, 3), (Outcome.DENY, 2), (Outcome.WOULD_DENY, 1), (Outcome.REQUIRE_APPROVAL, 1)):
        for _ in range(n):
            DecisionFactory(outcome=outcome)
    UserFactory(username="audra", role="auditor")
    log_in(page, live_server, "audra")
    figures = {key: int(page.get_by_test_id(f"stat-{key}").locator(".num").inner_text())
               for key in ("total", "allow", "deny", "would_deny", "require_approval")}
    assert figures == {"total": 7, "allow": 3, "deny": 2, "would_deny": 1, "require_approval": 1}
    page.get_by_test_id("stat-deny").click()
    expect(page.get_by_test_id("result-count")).to_have_text("2 decisions")
    expect(page).to_have_url(re.compile(r"since=.*outcome=deny"))


def test_a_page_outside_ones_role_says_so_inside_the_console(live_server, page):
    UserFactory(username="cora", role="compliance_officer")
    log_in(page, live_server, "cora")
    response = page.goto(f"{live_server.url}/audit/")
    assert response.status == 403
    expect(page.get_by_test_id("forbidden")).to_contain_text("compliance officer")
    expect(page.get_by_role("link", name="Policies")).to_be_visible()  # the console, not a bare error
    assert page.goto(f"{live_server.url}/policies/no-such-policy/").status == 404
    expect(page.get_by_test_id("not-found")).to_contain_text("Gavel has no page at this address")
