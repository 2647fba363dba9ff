"""In Chromium at 1280 and 400 px: a security admin rejects an exception with a comment, every role
sees an engaged kill switch as a banner, and a security admin adds a user and deactivates them."""
import os
import re
from datetime import timedelta
from pathlib import Path

import pytest
from django.utils import timezone
from playwright.sync_api import expect

from fleet.models import Environment
from rollout import exceptions as policy_exceptions
from rollout import services
from rollout.models import PolicyException
from tests.factories import PolicyFactory
from tests.support import browser_page

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]
WIDTHS = (1280, 400)
PASSWORD = "correct horse battery staple"


def shots(tmp_path) -> Path:
    """Screenshots go to GAVEL_SHOTS_DIR when set (to look at them), else the test's tmp dir."""
    folder = Path(os.environ.get("GAVEL_SHOTS_DIR") or tmp_path)
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def sign_in(page, live_server, username, path="/"):
    page.goto(f"{live_server.url}{path}")
    page.fill("#id_username", username)
    page.fill("#id_password", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(re.compile(re.escape(path.split("?")[0]) + r"$"))


def no_sideways_scroll(page):
    assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth + 1")


def test_a_security_admin_rejects_an_exception_with_a_comment(live_server, browser, make_user, tmp_path):
    author = make_user("policy_author", username="ann")
    make_user("security_admin", username="sam")
    for width in WIDTHS:
        requested = policy_exceptions.request_exception(
            policy=PolicyFactory(name=f"budget_{width}"), environment=Environment.objects.default(),
            match=[{"field": "user.id", "value": "dana"}], justification="month end", ticket="SEC-5",
            expires_at=timezone.now() + timedelta(days=3), requested_by=author)
        with browser_page(browser, width, 900) as page:
            sign_in(page, live_server, "sam", f"/exceptions/{requested.pk}/")
            page.get_by_role("button", name="Reject").click()  # the comment is required: nothing is sent
            expect(page.get_by_test_id("exception-status")).to_have_text("Pending approval")
            page.fill("#id_comment", "Use the <b>staging</b> budget instead")
            page.screenshot(path=str(shots(tmp_path) / f"exception-decide-{width}.png"), full_page=True)
            page.get_by_role("button", name="Reject").click()
            expect(page.get_by_test_id("exception-status")).to_have_text("Rejected")
            expect(page.get_by_test_id("exception-rejected")).to_contain_text("sam")
            expect(page.get_by_test_id("exception-rejected")).to_contain_text("Use the <b>staging</b> budget instead")
            no_sideways_scroll(page)
            page.screenshot(path=str(shots(tmp_path) / f"exception-rejected-{width}.png"), full_page=True)
            page.goto(f"{live_server.url}/exceptions/?status=rejected")
            expect(page.get_by_role("link", name=str(requested.pk), exact=True)).to_be_visible()
        requested.refresh_from_db()
        assert requested.status == PolicyException.Status.REJECTED


def test_every_role_sees_the_engaged_kill_switch(live_server, browser, make_user, tmp_path):
    admin = make_user("security_admin", username="sam")
    services.set_kill_switch(Environment.objects.default(), engaged=True, changed_by=admin, reason="incident 7")
    for role, path in (("security_admin", "/rollout/"), ("auditor", "/audit/"), ("policy_author", "/policies/"),
                       ("reviewer", "/approvals/"), ("compliance_officer", "/exceptions/")):
        make_user(role, username=f"{role}-1")
        for width in WIDTHS:
            with browser_page(browser, width, 900) as page:
                sign_in(page, live_server, f"{role}-1", path)
                banner = page.get_by_test_id("kill-switch-banner")
                expect(banner).to_contain_text("Kill switch engaged")
                expect(banner).to_contain_text("incident 7")
                no_sideways_scroll(page)
                page.screenshot(path=str(shots(tmp_path) / f"banner-{role}-{width}.png"), full_page=True)


def test_a_security_admin_adds_a_user_and_deactivates_them(live_server, browser, make_user, tmp_path):
    make_user("security_admin", username="sam")
    for width in WIDTHS:
        with browser_page(browser, width, 900) as page:
            sign_in(page, live_server, "sam", "/users/")
            page.get_by_role("link", name="Add a user").click()
            page.fill("#id_username", f"rita-{width}")
            page.get_by_role("checkbox", name=re.compile("Reviewer")).check()
            page.screenshot(path=str(shots(tmp_path) / f"user-form-{width}.png"), full_page=True)
            page.get_by_role("button", name="Add user").click()
            password = page.get_by_test_id("password").inner_text()
            assert len(password) >= 12
            page.screenshot(path=str(shots(tmp_path) / f"user-password-{width}.png"), full_page=True)
            page.goto(f"{live_server.url}/users/")
            page.get_by_role("link", name=f"rita-{width}").click()
            page.get_by_role("button", name="Deactivate").click()
            expect(page.get_by_test_id("user-status")).to_have_text("Deactivated")
            no_sideways_scroll(page)
            page.screenshot(path=str(shots(tmp_path) / f"user-detail-{width}.png"), full_page=True)
            page.goto(f"{live_server.url}/users/")
            no_sideways_scroll(page)
            page.screenshot(path=str(shots(tmp_path) / f"users-{width}.png"), full_page=True)
