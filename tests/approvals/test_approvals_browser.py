"""A reviewer approves a held action in the browser, and the waiting enforcement point proceeds."""
import re
import threading

import pytest
from playwright.sync_api import expect
from rest_framework.authtoken.models import Token

from approvals.pep_client import EnforcementPoint
from policies import services
from policies.models import Publication
from tests.factories import PolicyFactory, UserFactory
from tests.support import wait_until

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

POLICY = """package gavel.deploys

default allow := false

default require_approval := false

require_approval if input.environment == "prod"

allow if input.environment == "staging"

reasons contains sprintf("deploying %v to production needs a reviewer", [input.service]) if require_approval

decision := {"allow": allow, "require_approval": require_approval, "reasons": sort(reasons)}
"""


def test_reviewer_approves_and_the_waiting_client_proceeds(live_server, opa, celery_worker, page, tmp_path):
    policy = PolicyFactory(name="deploys", source=POLICY)
    publication = services.request_publication(policy.latest_version, requested_by=UserFactory(role="security_admin"))
    wait_until(lambda: Publication.objects.get(pk=publication.pk).status == "ok", message="the publication")
    token = Token.objects.create(user=UserFactory(role="enforcement_point")).key
    client = EnforcementPoint(opa, live_server.url, token, approval_wait=60, poll_seconds=5)
    outcome = {}
    request = {"user": {"id": "ci-bot"}, "action": "deploy", "service": "checkout", "environment": "prod"}
    waiting = threading.Thread(
        target=lambda: outcome.setdefault("verdict", client.decide("gavel_entry/deploys/decision", request)))
    waiting.start()

    UserFactory(username="rhea", role="reviewer")
    page.goto(f"{live_server.url}/approvals/")
    page.fill("#id_username", "rhea")
    page.fill("#id_password", "correct horse battery staple")
    page.click("button[type=submit]")
    page.wait_for_url(re.compile(r"/approvals/"))
    card = page.get_by_test_id("held-action").first
    for _ in range(10):  # the client may still be holding the action when the page first loads
        if card.count():
            break
        page.wait_for_timeout(500)
        page.reload()
    expect(card).to_contain_text("deploying checkout to production needs a reviewer")
    expect(card).to_contain_text("ci-bot")
    card.locator("input[name=comment]").fill("Release 4.2 was signed off in CAB")
    card.get_by_role("button", name="Approve").click()
    expect(page.get_by_test_id("held-action").first).to_contain_text("Approved")
    page.screenshot(path=str(tmp_path / "approved.png"), full_page=True)

    waiting.join(timeout=60)
    assert outcome["verdict"].allowed and outcome["verdict"].status == "approved"
