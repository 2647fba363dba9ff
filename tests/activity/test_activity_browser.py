"""An auditor reads the activity log in a real browser (Debian's Chromium): filtering swaps
the table in place, and whatever someone typed into Gavel is shown as text. Set GAVEL_SHOTS_DIR
to keep the screenshots."""
import os
import re
from datetime import timedelta

import pytest
from django.utils import timezone
from playwright.sync_api import expect
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from activity import paging
from fleet.models import Environment
from tests.factories import PolicyFactory

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_auditor_filters_the_activity_log(live_server, page, make_user, tmp_path, monkeypatch):
    make_user("auditor", username="carol")
    bob = make_user("security_admin", username="bob")
    PolicyFactory(name="budget")
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Token {Token.objects.create(user=bob).key}")
    created = api.post("/api/v1/exceptions/", {
        "policy": "budget", "environment": Environment.objects.default().name,
        "match": [{"field": "user.id", "value": "dana"}], "justification": "<b>month end</b>", "ticket": "SEC-9",
        "expires_at": (timezone.now() + timedelta(days=3)).isoformat()}, format="json")
    assert created.status_code == 201, created.content

    page.goto(f"{live_server.url}/activity/")
    page.fill("#id_username", "carol")
    page.fill("#id_password", "correct horse battery staple")
    page.click("button[type=submit]")
    page.wait_for_url(re.compile(r"/activity/$"))

    count = page.get_by_test_id("result-count")
    rows = page.get_by_test_id("activity-row")
    expect(rows.first).to_be_visible()

    page.select_option("#id_model", "policy-exception")
    expect(page).to_have_url(re.compile(r"/activity/\?model=policy-exception$"))
    expect(count).to_have_text("1 change")
    expect(rows.first).to_contain_text("bob")
    expect(rows.first).to_contain_text("/api/v1/exceptions/")
    expect(rows.first).to_contain_text("<b>month end</b>")  # text, never markup
    assert page.locator("table.activity dd b").count() == 0

    page.fill("#id_actor", "carol")  # carol changed nothing
    expect(count).to_have_text("0 changes")
    page.fill("#id_actor", "bob")
    expect(count).to_have_text("1 change")
    shots = os.environ.get("GAVEL_SHOTS_DIR") or tmp_path
    page.screenshot(path=f"{shots}/activity.png", full_page=True)

    # A log longer than the count goes says so, and how to reach the rest.
    monkeypatch.setattr(paging, "COUNT_LIMIT", 2)
    page.get_by_role("link", name="Clear").click()
    expect(count).to_have_text(
        "More than 2 changes: narrow the search by who, what or when, or read on from the last page")
    page.screenshot(path=f"{shots}/activity-capped.png", full_page=True)
    newest = rows.first.inner_text()
    page.get_by_test_id("read-on").click()  # the last counted page leads on past its last entry
    expect(page).to_have_url(re.compile(r"/activity/\?before=activity\.\w+%3A\d+$"))
    expect(page.get_by_test_id("older-than")).to_contain_text("Reading back from")
    assert rows.first.inner_text() != newest
    page.screenshot(path=f"{shots}/activity-read-on.png", full_page=True)
    page.get_by_role("link", name="Newest changes").click()
    expect(page.get_by_test_id("older-than")).to_have_count(0)
    assert rows.first.inner_text() == newest

    # On a phone each change reads top to bottom: nothing of it is off to the side.
    page.set_viewport_size({"width": 400, "height": 900})
    expect(rows.first).to_contain_text("Justification")
    assert page.evaluate("document.querySelector('table.activity').scrollWidth") <= 400 - 2 * 12
    assert rows.first.locator("dd").first.bounding_box()["x"] + 10 < 400
    page.screenshot(path=f"{shots}/activity-phone.png", full_page=True)
