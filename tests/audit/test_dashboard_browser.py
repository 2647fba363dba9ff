"""The audit dashboard in a real browser (Debian's Chromium) at 1280 and 400 px: time-range presets
change what the charts count, the page does not scroll sideways, long deny reasons keep their
labels inside the chart, a relative range refreshes in place, and nothing breaks the CSP."""
import re
from datetime import timedelta

import pytest
from django.utils import timezone
from playwright.sync_api import expect

from core.models import Outcome
from tests.factories import DecisionFactory, PolicyFactory, UserFactory
from tests.support import browser_page, shots

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

LONG_REASONS = [
    "the request's token budget is over the limit the platform team set for this agent",
    "agents may not query production databases outside the change window without a ticket",
    "<b>markup</b> in a reason is shown as the text it is, however long it happens to be",
]
# Watches for CSP refusals from the first script on (Playwright adds it outside the page's CSP).
CSP_WATCH = """window.__csp = [];
document.addEventListener("securitypolicyviolation", (e) => window.__csp.push(e.violatedDirective + " " + e.blockedURI));"""


@pytest.fixture
def history():
    """Decisions over the last few days: 4 in the last hour (2 denied, one with no latency), 3 earlier."""
    policy = PolicyFactory(name="gateway")
    now = timezone.now()
    plan = [(5, Outcome.DENY, LONG_REASONS[:2], 2.5), (20, Outcome.ALLOW, [], 0.4),
            (35, Outcome.WOULD_DENY, LONG_REASONS[2:], 1.1), (50, Outcome.ALLOW, [], None),
            (60 * 5, Outcome.DENY, LONG_REASONS[:1], 3.0), (60 * 30, Outcome.ALLOW, [], 0.7),
            (60 * 70, Outcome.DENY, LONG_REASONS[1:2], 0.9)]
    for minutes, outcome, reasons, ms in plan:
        DecisionFactory(policy=policy, version=policy.latest_version, outcome=outcome, reasons=reasons,
                        timestamp=now - timedelta(minutes=minutes), latency_ns=None if ms is None else int(ms * 1e6))
    UserFactory(username="audra", role="auditor")


def open_dashboard(page, live_server):
    page.add_init_script(CSP_WATCH)
    messages = []
    page.on("console", lambda message: messages.append(message.text))
    page.on("pageerror", lambda error: messages.append(f"page error: {error}"))
    page.goto(f"{live_server.url}/audit/dashboard/")
    page.fill("#id_username", "audra")
    page.fill("#id_password", "correct horse battery staple")
    page.click("button[type=submit]")
    page.wait_for_url(re.compile(r"/audit/dashboard/$"))
    return messages


def assert_no_csp_violation(page, messages):
    assert page.evaluate("window.__csp") == []
    assert not [m for m in messages if "Content Security Policy" in m or "Refused to" in m], messages
    assert not [m for m in messages if m.startswith("page error")], messages


def drawn(page):
    """Every chart on the page has been drawn by Plotly."""
    charts = page.locator(".chart[data-figure]")
    expect(charts.first).to_be_visible()
    for index in range(charts.count()):
        expect(charts.nth(index).locator(".main-svg").first).to_be_attached()


def choose(page, label, key):
    page.get_by_test_id("range-presets").get_by_text(label, exact=True).click()
    page.wait_for_url(re.compile(rf"[?&]range={key}(&|$)"))
    expect(page.locator(f'[data-range="{key}"]')).to_have_attribute("aria-current", "page")
    drawn(page)


def labels_inside(page, key):
    """The y-axis labels of a chart lie within its box (none cut at the left or right)."""
    chart = page.get_by_test_id(f"chart-{key}").bounding_box()
    ticks = page.get_by_test_id(f"chart-{key}").locator(".ytick text")
    assert ticks.count() > 0
    for index in range(ticks.count()):
        box = ticks.nth(index).bounding_box()
        assert box["x"] >= chart["x"] - 0.5 and box["x"] + box["width"] <= chart["x"] + chart["width"] + 0.5, (
            key, ticks.nth(index).text_content(), box, chart)


@pytest.mark.parametrize("width", [1280, 400])
def test_presets_labels_and_refresh_at_each_width(live_server, browser, history, width, tmp_path):
    shots_dir = shots(tmp_path)
    with browser_page(browser, width, 900) as page:
        messages = open_dashboard(page, live_server)
        drawn(page)
        expect(page.get_by_test_id("chart-period")).to_contain_text("7 decisions")
        expect(page.locator("#dashboard-charts[hx-trigger]")).to_have_count(0)  # no range: nothing to refresh

        choose(page, "Last hour", "1h")
        expect(page.get_by_test_id("chart-period")).to_contain_text("4 decisions")
        assert "since=" in page.url and "until=" in page.url
        expect(page.locator("#dashboard-charts")).to_have_attribute("hx-trigger", "every 60s")
        page.screenshot(path=str(shots_dir / f"last-hour-{width}.png"), full_page=True)
        page.get_by_test_id("chart-volume").screenshot(path=str(shots_dir / f"last-hour-volume-{width}.png"))

        choose(page, "Last day", "24h")
        expect(page.get_by_test_id("chart-period")).to_contain_text("5 decisions")
        choose(page, "Last week", "7d")
        expect(page.get_by_test_id("chart-period")).to_contain_text("7 decisions")
        expect(page.get_by_test_id("chart-period")).to_contain_text("per day")  # 7 bars, not 168 slivers
        page.screenshot(path=str(shots_dir / f"last-week-{width}.png"), full_page=True)
        for key in ("volume", "reasons", "latency"):
            page.get_by_test_id(f"chart-{key}").screenshot(path=str(shots_dir / f"last-week-{key}-{width}.png"))

        assert page.evaluate("document.documentElement.scrollWidth") <= width
        for key in ("reasons", "versions"):
            labels_inside(page, key)
        expect(page.get_by_test_id("chart-reasons").locator(".ytick text").first).to_contain_text("…")

        # The refresh the poll would make, asked now: a decision stored since shows up in place.
        DecisionFactory(outcome=Outcome.DENY, reasons=["new"], timestamp=timezone.now() - timedelta(minutes=1))
        page.evaluate("""() => { const block = document.getElementById("dashboard-charts");
            htmx.ajax("GET", block.getAttribute("hx-get"), {target: block, swap: "outerHTML"}); }""")
        expect(page.get_by_test_id("chart-period")).to_contain_text("8 decisions")
        expect(page.get_by_test_id("see-decisions")).to_have_text("See these 8 decisions")  # refreshed with them
        drawn(page)
        expect(page.locator("#dashboard-charts")).to_have_attribute("hx-trigger", "every 60s")

        page.click("form.filters button[type=submit]")  # the form's own times: an absolute range
        page.wait_for_url(re.compile(r"since="))
        assert "range=" not in page.url
        expect(page.locator("[data-range][aria-current]")).to_have_count(0)
        expect(page.locator("#dashboard-charts[hx-trigger]")).to_have_count(0)
        drawn(page)
        assert page.evaluate("document.documentElement.scrollWidth") <= width
        assert_no_csp_violation(page, messages)
