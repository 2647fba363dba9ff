"""A security admin previews a rollout in a real browser (Debian's Chromium) before saving it: the
proposal and the current rollout are counted over the same decisions of the last 24 hours."""
import re

import pytest
from playwright.sync_api import expect

from core.models import Outcome
from fleet.models import Environment
from rollout import canary
from tests.factories import DecisionFactory, PolicyFactory
from tests.support import shots

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_security_admin_previews_a_canary_beside_the_current_rollout(live_server, page, make_user, tmp_path):
    make_user("security_admin", username="sam")
    policy = PolicyFactory(name="budget", title="Token budget")
    users = [f"user-{n}" for n in range(40)]
    for n, user in enumerate(users):
        DecisionFactory(policy=policy, input={"user": {"id": user}, "note": "<i>typed by a user</i>"},
                        outcome=Outcome.DENY if n % 2 else Outcome.ALLOW)
    canary_users = [n for n, user in enumerate(users) if canary.user_bucket(user) < 30]

    page.goto(f"{live_server.url}/rollout/{Environment.objects.default().name}/budget/")
    page.fill("#id_username", "sam")
    page.fill("#id_password", "correct horse battery staple")
    page.click("button[type=submit]")
    page.wait_for_url(re.compile(r"/rollout/.+/budget/$"))

    page.select_option("#id_mode", "dry-run")
    page.fill("#id_enforce_percentage", "30")
    page.get_by_role("button", name="Preview on the last 24 hours").click()

    preview = page.locator("#preview")
    expect(preview).to_contain_text("Of the 40 decisions")
    expect(page.get_by_test_id("preview-enforced")).to_have_text(str(len(canary_users)))
    expect(page.get_by_test_id("preview-denied")).to_have_text(str(sum(1 for n in canary_users if n % 2)))
    enforced_now = preview.locator("tr", has_text="enforced").first.locator("td").nth(1)
    expect(enforced_now).to_have_text("40")  # today: enforced for everyone
    expect(page).to_have_url(re.compile(r"/rollout/.+/budget/$"))  # nothing was saved or left the page
    page.screenshot(path=str(shots(tmp_path) / "rollout-preview.png"), full_page=True)
