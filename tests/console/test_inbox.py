"""Each role is told what waits for it: the home page's "Waiting for you" and the navigation's counts
(console/inbox.py), counted by indexed queries."""
import re
from datetime import timedelta

import pytest
from django.db import connection
from django.utils import timezone
from playwright.sync_api import expect

from alerts.models import Alert, AlertRule
from approvals import services as approvals
from console import inbox
from exports.models import ExportRecord
from policies import review
from tests.factories import PolicyFactory, UserFactory
from tests.support import browser_page, shots

PASSWORD = "correct horse battery staple"
HELD_RESULT = {"allow": False, "require_approval": True, "reasons": ["deleting <b>tickets</b> needs a reviewer"]}


def world():
    author = UserFactory(username="ada", role="policy_author")
    policy = PolicyFactory(name="gateway", title="Agent gateway", author=author)
    review.request_publish(policy.latest_version, requested_by=author, reason="ship the <script>budget</script> rule")
    approvals.hold(decision_id="held-1", path="gavel_entry/gateway/decision", request={
        "user": {"id": "u-7"}, "agent": {"id": "support-bot"}, "action": "delete", "tool": "ticket.delete",
        "resource": "helpdesk/tickets", "args": {"ticket_id": "T-39001"}}, result=HELD_RESULT, created_from="api")
    rule = AlertRule.objects.create(name="Deny rate over 20%", metric="deny_rate", threshold=20)
    Alert.objects.create(rule=rule, opened_at=timezone.now(), opened_value=30, peak_value=30, last_value=30,
                         decisions=50)
    auditor = UserFactory(username="audrey", role="auditor")
    ExportRecord.objects.create(format="csv", delivery="job", status="done", as_of=timezone.now(),
                                finished_at=timezone.now(), gavel_version="test", created_by=auditor, row_count=3)
    ExportRecord.objects.create(format="csv", delivery="job", status="done", as_of=timezone.now(),
                                finished_at=timezone.now() - timedelta(days=3), gavel_version="test",
                                created_by=auditor)
    return {"author": author, "auditor": auditor, "admin": UserFactory(username="sam", role="security_admin"),
            "reviewer": UserFactory(username="rhea", role="reviewer"),
            "compliance": UserFactory(username="cora", role="compliance_officer")}


def counts(user):
    return {w.kind: w.count for w in inbox.waiting_for(user)}


@pytest.mark.django_db
def test_each_role_counts_what_it_can_act_on():
    people = world()
    assert counts(people["admin"]) == {"publish_requests": 1, "held_actions": 1, "alerts": 1}
    assert counts(people["reviewer"]) == {"held_actions": 1}
    assert counts(people["auditor"]) == {"exports": 2}  # never opened the list of exports: both are new
    assert counts(people["compliance"]) == {}
    # nobody is asked to approve their own request, nor a held action they asked for or voted on
    assert counts(people["author"]) == {"publish_requests": 0}
    assert counts(UserFactory(username="u-7", role="reviewer")) == {"held_actions": 0}
    held = approvals.HeldAction.objects.get()
    approvals.review(held, reviewer=people["admin"], approve=False, comment="no")
    assert counts(people["reviewer"]) == {"held_actions": 0}


@pytest.mark.django_db
def test_the_counts_use_indexes():
    people = world()
    with connection.cursor() as cursor:
        cursor.execute("SET enable_seqscan = off")  # tiny tables: ask whether an index could serve
        try:
            plans = inbox.counts_query_plans(people["admin"])
            plans["exports"] = inbox.counts_query_plans(people["auditor"])["exports"]
        finally:
            cursor.execute("RESET enable_seqscan")
    for kind, plan in plans.items():
        main = plan.splitlines()
        assert not any("Seq Scan" in line for line in main), (kind, plan)
        assert "Index" in plan, (kind, plan)
    assert "publish_request_pending" in plans["publish_requests"]
    assert "export_ready_by_creator" in plans["exports"]


@pytest.mark.django_db
def test_finished_exports_count_since_the_auditor_last_looked(client):
    people = world()
    auditor, other = people["auditor"], UserFactory(username="otto", role="auditor")
    assert counts(auditor) == {"exports": 2}
    client.force_login(auditor)
    page = client.get("/audit/exports/").content.decode()
    assert page.count('data-testid="export-new"') == 2  # marked new on the visit that sees them
    assert counts(auditor) == {"exports": 0}
    assert client.get("/audit/exports/").content.decode().count('data-testid="export-new"') == 0

    def finished(by, **extra):
        return ExportRecord.objects.create(format="jsonl", delivery="job", status="done", as_of=timezone.now(),
                                           finished_at=timezone.now(), gavel_version="test", created_by=by, **extra)
    finished(auditor)
    finished(other)  # another auditor's export is theirs to be told about
    ExportRecord.objects.create(format="csv", delivery="job", status="running", as_of=timezone.now(),
                                gavel_version="test", created_by=auditor)  # not finished yet
    finished(auditor, expired_at=timezone.now())  # its file is gone: nothing to fetch
    assert counts(auditor) == {"exports": 1}
    assert counts(other) == {"exports": 1}
    client.get("/audit/exports/")
    assert counts(auditor) == {"exports": 0}
    assert counts(other) == {"exports": 1}  # each person's last look is their own


@pytest.mark.browser
@pytest.mark.django_db(transaction=True)
def test_each_role_sees_its_inbox_at_1280_and_400(live_server, browser, tmp_path):
    people = world()
    expected = {  # role -> (inbox kinds shown, navigation counts shown)
        "admin": ({"publish_requests", "held_actions", "alerts"}, {"publish_requests", "held_actions"}),
        "reviewer": ({"held_actions"}, {"held_actions"}),
        "auditor": ({"exports"}, {"exports"}),
        "author": (set(), set()),
        "compliance": (set(), set()),
    }
    for who, (kinds, nav) in expected.items():
        for width in (1280, 400):
            with browser_page(browser, width, 900) as page:
                page.goto(f"{live_server.url}/login/")
                page.fill("#id_username", people[who].username)
                page.fill("#id_password", PASSWORD)
                page.click("button[type=submit]")
                page.wait_for_url(re.compile(r"/$"))
                # a compliance officer acts on nothing that waits, so the page has no inbox at all
                expect(page.get_by_test_id("inbox")).to_have_count(0 if who == "compliance" else 1)
                for kind in ("publish_requests", "held_actions", "alerts", "exports"):
                    expect(page.get_by_test_id(f"inbox-{kind}")).to_have_count(1 if kind in kinds else 0)
                    expect(page.get_by_test_id(f"nav-count-{kind}")).to_have_count(1 if kind in nav else 0)
                if who == "author":
                    expect(page.get_by_test_id("inbox-empty")).to_be_visible()
                if "publish_requests" in kinds:  # hostile text stays text
                    expect(page.get_by_test_id("inbox-publish_requests")).to_contain_text("<script>budget</script>")
                    page.get_by_test_id("nav-count-publish_requests").click()
                    expect(page.get_by_test_id("inbox-publish_requests")).to_be_in_viewport()
                if "held_actions" in kinds:
                    expect(page.get_by_test_id("nav-count-held_actions")).to_contain_text("1")
                # nothing sticks out of a narrow window
                assert page.evaluate("document.documentElement.scrollWidth") <= width
                page.screenshot(path=str(shots(tmp_path) / f"inbox-{who}-{width}.png"), full_page=True)
