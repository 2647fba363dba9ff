"""The approval queue in Chromium at 1280 and 400 px: headlines that name actor, action and target,
the request as escaped JSON, the risk in words, pages, a bulk approval with one comment, a card
that shows a decision made elsewhere without a reload, and a search saved under a name and applied again."""
import re

import pytest
from playwright.sync_api import expect

from approvals import services as approvals
from approvals.models import HeldAction
from tests.factories import UserFactory
from tests.support import browser_page, shots

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

RESULT = {"allow": False, "require_approval": True, "reasons": ["deleting tickets in prod needs a <b>reviewer</b>"]}


def held(n: int, requester: str = "u-7"):
    request = {"user": {"id": requester}, "agent": {"id": "support-bot"}, "action": "delete",
               "tool": "ticket.delete", "resource": "helpdesk/tickets", "environment": "prod",
               "args": {"ticket_id": f"T-{39000 + n}", "note": "<script>alert(1)</script>"}}
    return approvals.hold(decision_id=f"held-{n:02d}", path="gavel_entry/gateway/decision", request=request,
                          result=RESULT, created_from="api")[0]


def login(page, url, username):
    page.goto(f"{url}/login/?next=/approvals/")
    page.fill("#id_username", username)
    page.fill("#id_password", "correct horse battery staple")
    page.click("button[type=submit]")
    page.wait_for_url(re.compile(r"/approvals/"))


def test_bulk_approval_json_headline_and_live_cards(live_server, opa, browser, tmp_path):
    for n in range(28):
        held(n)
    held(90, requester="rhea")  # her own request: the bulk review must refuse it and go on
    UserFactory(username="rhea", role="reviewer")
    other = UserFactory(username="sam", role="security_admin")

    with browser_page(browser, 1280, 900) as page:
        login(page, live_server.url, "rhea")
        first = page.get_by_test_id("held-action").first
        expect(first.get_by_test_id("held-headline")).to_have_text(
            re.compile(r"support-bot \(agent\) for u-7 wants to delete ticket T-390\d\d \(helpdesk/tickets\) "
                       r"with ticket\.delete in prod"))
        expect(first.get_by_test_id("held-risk")).to_contain_text("5 of 5, very high")
        expect(first.get_by_test_id("held-risk")).to_contain_text("+2 for a delete, +1 in prod")
        first.locator("summary").click()
        json_text = first.get_by_test_id("held-json").inner_text()
        assert '"ticket_id": "T-390' in json_text and '"note": "<script>alert(1)</script>"' in json_text
        assert "{'" not in json_text  # JSON, not a Python repr
        expect(page.get_by_test_id("queue-count")).to_have_text("1–25 of 29")
        page.screenshot(path=str(shots(tmp_path) / "queue-reviewer-1280.png"), full_page=False)

        # the second page keeps the search in the URL
        page.get_by_test_id("next-page").click()
        expect(page).to_have_url(re.compile(r"status=pending.*page=2"))
        expect(page.get_by_test_id("queue-count")).to_have_text("26–29 of 29")
        cards = page.get_by_test_id("held-action")
        expect(cards).to_have_count(4)
        for i in range(4):
            cards.nth(i).get_by_test_id("bulk-pick").check()
        bulk = page.get_by_test_id("bulk-review")
        bulk.locator("input[name=comment]").fill("Cleanup of spam tickets agreed in CAB-77")
        bulk.get_by_role("button", name="Approve ticked").click()
        expect(page.locator(".flash-success")).to_contain_text("Approved 3 held actions")
        expect(page.locator(".flash-error")).to_contain_text("held-90: nobody approves their own request")
        page.screenshot(path=str(shots(tmp_path) / "queue-bulk-done-1280.png"), full_page=True)
    approved = HeldAction.objects.filter(status="approved")
    assert approved.count() == 3 and HeldAction.objects.get(decision_id="held-90").status == "pending"
    for action in approved:  # each bound and recorded on its own
        assert [(v.reviewer.username, v.comment) for v in action.votes.all()] == [
            ("rhea", "Cleanup of spam tickets agreed in CAB-77")]
        assert action.valid_until is not None

    with browser_page(browser, 400, 900) as page:
        login(page, live_server.url, "rhea")
        card = page.get_by_test_id("held-action").first
        expect(card.get_by_test_id("held-status")).to_have_text("Waiting for review")
        expect(page.get_by_test_id("bulk-review")).to_be_visible()
        assert page.evaluate("document.documentElement.scrollWidth") <= 400
        page.screenshot(path=str(shots(tmp_path) / "queue-reviewer-400.png"), full_page=False)
        # decided by someone else: the card says so on its own, without a reload, and drops its controls
        decision_id = card.get_attribute("id")
        target = HeldAction.objects.get(pk=int(decision_id.removeprefix("held-")))
        approvals.review(target, reviewer=other, approve=False, comment="not during the freeze")
        expect(card.get_by_test_id("held-status")).to_have_text("Rejected", timeout=25000)
        expect(card).to_contain_text("sam rejected: “not during the freeze”")
        expect(card.locator(".review-form")).to_be_hidden()
        page.screenshot(path=str(shots(tmp_path) / "queue-live-400.png"), full_page=False)

        # a search saved under a name comes back with one click, from the plain queue
        page.fill("#id_requester", "rhea")
        page.get_by_role("button", name="Search", exact=True).click()
        expect(page.get_by_test_id("queue-count")).to_have_text("1–1 of 1")
        page.get_by_label("Name for this search").fill("Rhea's own <b>requests</b>")
        page.get_by_role("button", name="Save this search").click()
        expect(page.locator(".flash-success")).to_contain_text("Search saved as “Rhea's own <b>requests</b>”")
        page.goto(f"{live_server.url}/approvals/")
        expect(page.get_by_test_id("queue-count")).to_have_text("1–25 of 25")
        page.get_by_test_id("saved-search").filter(has_text="Rhea's own <b>requests</b>").click()
        expect(page).to_have_url(re.compile(r"status=pending&requester=rhea$"))
        expect(page.get_by_test_id("queue-count")).to_have_text("1–1 of 1")
        assert page.evaluate("document.documentElement.scrollWidth") <= 400
        page.screenshot(path=str(shots(tmp_path) / "queue-saved-search-400.png"), full_page=True)
