"""In Chromium: the Rego editor (CodeMirror) shows a compile error under its line, as one types and
after a refused save; from a decision's page, explain highlights the rule that decided, and the
playground evaluates the decision's input against a draft."""
import os
import re
from pathlib import Path

import pytest
from playwright.sync_api import expect

from core.models import Outcome
from tests.factories import DecisionFactory, PolicyFactory
from tests.support import browser_page

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]
PASSWORD = "correct horse battery staple"

GATEWAY = """package gavel.{name}

allowed_tools := {{"search", "read"}}

default allow := false

# METADATA
# title: Unknown tools are refused
deny contains sprintf("tool %s is not allowed", [input.tool]) if {{
	not input.tool in allowed_tools
}}

allow if count(deny) == 0
"""


def shots(tmp_path) -> Path:
    folder = Path(os.environ.get("GAVEL_SHOTS_DIR") or tmp_path)
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def sign_in(page, live_server, username, path):
    page.goto(f"{live_server.url}{path}")
    page.fill("#id_username", username)
    page.fill("#id_password", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(re.compile(re.escape(path.split("?")[0])))


def test_the_editor_shows_a_compile_error_at_its_line(live_server, browser, make_user, tmp_path):
    make_user("policy_author", username="ann")
    PolicyFactory(name="gateway", source=GATEWAY.format(name="gateway"))
    with browser_page(browser, 1280, 1000) as page:
        refused = []
        page.on("console", lambda m: refused.append(m.text) if "Content Security Policy" in m.text else None)
        sign_in(page, live_server, "ann", "/policies/gateway/versions/new/")
        source = page.locator('[data-editor-for="source"]')
        expect(source.locator(".cm-lineNumbers .cm-gutterElement", has_text="13")).to_be_visible()
        expect(page.locator("textarea#id_source")).to_be_hidden()  # kept in the form, in step with the editor
        source.locator(".cm-content").click()
        page.keyboard.press("Control+End")
        page.keyboard.type("\nallow if {\n\tinput.user ==\n}\n")
        # Checked as one types: OPA's error, under the line OPA names (the closing brace, line 17).
        message = source.locator(".cm-gavel-error")
        expect(message).to_be_visible(timeout=20000)
        expect(message).to_contain_text(re.compile(r"^Error, line 1[5-7]: \S"))
        row = int(message.get_attribute("data-row"))
        assert message.inner_text().startswith(f"Error, line {row}: ")
        line = source.locator(".cm-line").nth(row - 1)
        expect(line).to_have_class(re.compile("cm-gavel-line-error"))
        expect(page.get_by_test_id("check-status")).to_have_text("OPA could not compile this: 1 error.")
        page.screenshot(path=str(shots(tmp_path) / "editor-error.png"), full_page=True)
        # A save is refused the same way, and the page puts the error back under its line.
        page.fill("#id_message", "broken on purpose")
        page.get_by_role("button", name="Compile and save").click()
        expect(page.locator(".error-box")).to_contain_text("Nothing was saved")
        expect(page.locator('[data-editor-for="source"] .cm-gavel-error')).to_have_attribute("data-row", str(row))
        assert refused == []


def test_explain_and_the_playground_from_a_decision(live_server, browser, make_user, tmp_path):
    make_user("policy_author", username="ann")
    policy = PolicyFactory(name="gateway", source=GATEWAY.format(name="gateway"))
    decision = DecisionFactory(policy=policy, version=policy.latest_version, outcome=Outcome.DENY,
                               input={"tool": "delete", "user": {"id": "dana"}}, reasons=["tool delete is not allowed"])
    with browser_page(browser, 1280, 1000) as page:
        sign_in(page, live_server, "ann", f"/audit/{decision.decision_id}/")
        page.get_by_role("link", name="Explain this decision").click()
        expect(page.get_by_test_id("decided-by")).to_have_text(re.compile(r"Decided by Unknown tools are refused"))
        deciding = page.get_by_test_id("deciding-rule")
        expect(deciding).to_have_count(1)
        expect(deciding).to_contain_text("Unknown tools are refused")
        expect(page.get_by_test_id("explain-fired").locator("tbody tr")).to_have_count(1)  # no constant, no default
        page.get_by_test_id("explain-fired").scroll_into_view_if_needed()
        page.screenshot(path=str(shots(tmp_path) / "explain.png"), full_page=True)

        page.get_by_test_id("try-in-playground").click()
        expect(page.get_by_test_id("playground-note")).to_contain_text("which decided it")
        expect(page.locator('[data-editor-for="input"] .cm-content')).to_contain_text('"delete"')
        # Each evaluation is a round trip to the sandboxed OPA: under a loaded machine, more than 5 s.
        evaluated = 20000
        page.get_by_test_id("evaluate").click()
        expect(page.get_by_test_id("playground-outcome")).to_have_text("Deny", timeout=evaluated)
        expect(page.get_by_test_id("playground-why")).to_contain_text("Denies when")
        # Now the draft: let "delete" through, and evaluate again.
        draft = page.locator('[data-editor-for="source"] .cm-content')
        draft.locator(".cm-line", has_text='allowed_tools := {"search", "read"}').click()
        page.keyboard.press("End")
        page.keyboard.press("ArrowLeft")
        page.keyboard.type(', "delete"')
        page.get_by_test_id("evaluate").click()
        expect(page.get_by_test_id("playground-outcome")).to_have_text("Allow", timeout=evaluated)
        expect(page.get_by_test_id("playground-why")).to_contain_text("No rule that denies")
        page.screenshot(path=str(shots(tmp_path) / "playground.png"), full_page=True)


def test_the_evidence_print_view_and_its_pdf(live_server, browser, make_user, tmp_path):
    make_user("compliance_officer", username="carla", first_name="Carla", last_name="Compliance")
    PolicyFactory(name="gateway", source=GATEWAY.format(name="gateway"))
    with browser_page(browser, 1280, 1000) as page:
        sign_in(page, live_server, "carla", "/policies/gateway/v1/")
        expect(page.get_by_test_id("source-lines").locator("li")).to_have_count(13)  # the source, numbered
        page.get_by_test_id("source-lines").scroll_into_view_if_needed()
        page.screenshot(path=str(shots(tmp_path) / "version-source.png"))
        page.get_by_test_id("evidence-link").click()
        expect(page.get_by_test_id("approval-chain")).to_contain_text("Nobody has asked to publish this version.")
        expect(page.get_by_test_id("prepared-for")).to_contain_text("for Carla Compliance (carla).")
        expect(page.locator("#source-L9")).to_contain_text("deny contains sprintf")
        page.screenshot(path=str(shots(tmp_path) / "evidence-screen.png"), full_page=True)
        page.emulate_media(media="print")
        expect(page.locator(".ev-screen-only")).to_be_hidden()
        page.screenshot(path=str(shots(tmp_path) / "evidence-print.png"), full_page=True)
        # The PDF link, with this browser's session; WeasyPrint may take a while on a loaded machine.
        pdf = page.request.get(live_server.url + page.get_by_test_id("evidence-pdf").get_attribute("href"),
                               timeout=120000)
        assert pdf.ok and pdf.headers["content-type"] == "application/pdf"
        assert pdf.headers["content-disposition"] == 'attachment; filename="gateway-v1-evidence.pdf"'
        assert pdf.body().startswith(b"%PDF")
