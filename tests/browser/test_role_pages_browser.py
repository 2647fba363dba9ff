"""Every page of the day's work (issue 16), as each role would open it, in Chromium at 1280 and 400 px:
the page never scrolls sideways (a wide table scrolls inside its card) and no table breaks a word in the
middle ("secadmi n"); and a security admin approves an exception and revokes it, each after its
confirmation page. Set GAVEL_SHOTS_DIR to keep a screenshot of each page to look at."""
import os
import re
from datetime import timedelta

import pytest
from django.utils import timezone
from playwright.sync_api import expect

from approvals import services as approvals
from core.models import Outcome
from exports.models import ExportRecord
from fleet.models import Environment
from rollout import exceptions as policy_exceptions
from tests.factories import DecisionFactory, PolicyFactory, UserFactory
from tests.support import browser_page, shots

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]
PASSWORD = "correct horse battery staple"

# Words in table cells that ended up on two lines. Breaking after "-", "/", "." or "@" is fine, and so is
# a run longer than 24 characters (a hash, a decision id): those may wrap anywhere.
BROKEN_WORDS = """() => {
  const broken = [];
  for (const cell of document.querySelectorAll("table td, table th")) {
    const walker = document.createTreeWalker(cell, NodeFilter.SHOW_TEXT);
    for (let node = walker.nextNode(); node; node = walker.nextNode()) {
      for (const m of node.data.matchAll(/[\\p{L}\\p{N}_]+/gu)) {
        if (m[0].length > 24) continue;
        const range = document.createRange();
        range.setStart(node, m.index);
        range.setEnd(node, m.index + m[0].length);
        const lines = new Set([...range.getClientRects()].filter(r => r.width > 0).map(r => Math.round(r.bottom)));
        if (lines.size > 1) broken.push(m[0]);
      }
    }
  }
  return broken;
}"""


def world():
    people = {role: UserFactory(username=name, role=role) for role, name in (
        ("security_admin", "secadmin"), ("auditor", "auditor_audrey"), ("reviewer", "reviewer_rhea"),
        ("compliance_officer", "compliance_cora"), ("policy_author", "author_ann"))}
    UserFactory(username="secadmin_two", role="security_admin")
    policy = PolicyFactory(name="agent_gateway", title="Agent gateway")
    environment = Environment.objects.default()
    pending = [policy_exceptions.request_exception(
        policy=policy, environment=environment, match=[{"field": "user.id", "value": f"dana-{n}"}],
        justification="month-end reconciliation needs the finance export", ticket=f"SEC-104{n}",
        expires_at=timezone.now() + timedelta(days=3), requested_by=people["policy_author"]) for n in range(3)]
    decided = policy_exceptions.request_exception(
        policy=policy, environment=environment, match=[{"field": "agent.id", "value": "copilot-7"}],
        justification="pilot", ticket="SEC-1043", expires_at=timezone.now() + timedelta(days=3),
        requested_by=people["policy_author"])
    policy_exceptions.approve_exception(decided, approved_by=people["security_admin"], comment="agreed in CAB-77")
    policy_exceptions.revoke_exception(decided, revoked_by=people["security_admin"], reason="pilot over")
    held = approvals.hold(decision_id="held-1", path="gavel_entry/agent_gateway/decision", request={
        "user": {"id": "u-7"}, "agent": {"id": "support-bot"}, "action": "delete", "tool": "ticket.delete",
        "resource": "helpdesk/tickets", "args": {"ticket_id": "T-39001"}},
        result={"allow": False, "require_approval": True, "reasons": ["deleting tickets needs a reviewer"]},
        created_from="api")[0]
    now = timezone.now()
    for minutes, outcome in ((3, Outcome.ALLOW), (2, Outcome.DENY), (1, Outcome.WOULD_DENY)):
        DecisionFactory(timestamp=now - timedelta(minutes=minutes), outcome=outcome,
                        reasons=["token budget exceeded"] if outcome != Outcome.ALLOW else [])
    export = ExportRecord.objects.create(
        format="csv", delivery="job", status="done", as_of=now, finished_at=now, gavel_version="test",
        created_by=people["auditor"], row_count=1, expected_rows=1, query="outcome=deny",
        readable_filter="Outcome: Deny; decisions Gavel had stored by " + now.strftime("%Y-%m-%d %H:%M:%S UTC"))
    return people, {"exception": pending[0].pk, "to_approve": [pending[1].pk, pending[2].pk],
                    "revoked": decided.pk, "held": held.decision_id, "export": export.pk, "user": people["reviewer"].pk}


PAGES = {  # role -> the pages of issue 16 it works with
    "security_admin": ["/", "/approvals/", "/exceptions/", "/exceptions/{exception}/", "/exceptions/{revoked}/",
                       "/users/", "/users/{user}/", "/activity/", "/audit/exports/", "/audit/exports/{export}/",
                       "/audit/dashboard/", "/rollout/"],
    "auditor": ["/", "/activity/", "/audit/exports/", "/audit/exports/{export}/", "/audit/dashboard/"],
    "reviewer": ["/", "/approvals/", "/approvals/{held}/"],
    "compliance_officer": ["/", "/exceptions/"],
    "policy_author": ["/", "/exceptions/", "/exceptions/{exception}/"],
}


def check(page, width, problems, where, keep, tmp_path, name):
    if page.evaluate("document.documentElement.scrollWidth") > width:
        problems.append(f"{where} at {width}px scrolls sideways")
    broken = page.evaluate(BROKEN_WORDS)
    if broken:
        problems.append(f"{where} at {width}px breaks {broken[:5]}")
    if keep:
        page.screenshot(path=str(shots(tmp_path) / f"{name}-{width}.png"), full_page=True)


def approve_then_revoke(page, live_server, pk, width, problems, keep, tmp_path):
    """The security admin's exception workflow: each step asks to confirm, with the comment or reason."""
    page.goto(f"{live_server.url}/exceptions/{pk}/")
    page.fill("#id_comment", "Agreed in CAB-78 for the month end")
    page.get_by_role("button", name="Approve…").click()
    expect(page.get_by_test_id("confirm-approve")).to_contain_text("Agreed in CAB-78 for the month end")
    check(page, width, problems, "approve confirmation", keep, tmp_path, "security_admin-exception-confirm-approve")
    page.get_by_role("button", name="Yes, approve").click()
    expect(page.get_by_test_id("exception-status")).to_have_text("Active")  # approved, and in force
    page.fill("#id_reason", "Month end is over")
    page.get_by_role("button", name="Revoke…").click()
    expect(page.get_by_test_id("confirm-revoke")).to_contain_text("Month end is over")
    check(page, width, problems, "revoke confirmation", keep, tmp_path, "security_admin-exception-confirm-revoke")
    page.get_by_role("button", name="Yes, revoke now").click()
    expect(page.get_by_test_id("exception-status")).to_have_text("Revoked")
    expect(page.get_by_test_id("exception-revoked")).to_contain_text("secadmin")
    expect(page.get_by_test_id("exception-revoked")).to_contain_text("Month end is over")


def test_every_page_of_the_days_work_fits_and_keeps_words_whole(live_server, browser, tmp_path):
    people, ids = world()
    keep = bool(os.environ.get("GAVEL_SHOTS_DIR"))
    problems = []
    for role, paths in PAGES.items():
        for width, to_approve in zip((1280, 400), ids["to_approve"]):
            with browser_page(browser, width, 900) as page:
                page.set_default_navigation_timeout(60000)  # the dashboard draws its figures on a shared machine
                page.goto(f"{live_server.url}/login/")
                page.fill("#id_username", people[role].username)
                page.fill("#id_password", PASSWORD)
                page.click("button[type=submit]")
                page.wait_for_url(re.compile(r"/$"))
                for template in paths:
                    path = template.format(**ids)
                    response = page.goto(f"{live_server.url}{path}")
                    assert response.status == 200, (role, path, response.status)
                    name = re.sub(r"[^a-z0-9]+", "-", template.strip("/{}")) or "home"
                    check(page, width, problems, f"{role} {path}", keep, tmp_path, f"{role}-{name}")
                if role == "security_admin":
                    approve_then_revoke(page, live_server, to_approve, width, problems, keep, tmp_path)
    assert not problems, "\n".join(problems)
