"""An auditor exports a search from the audit trail in Chromium: a streamed download, then a job
whose progress the page follows until its file can be downloaded."""
import hashlib
import json
import re

import pytest
from playwright.sync_api import expect

from core.models import Outcome
from exports.models import ExportRecord
from tests.factories import DecisionFactory, UserFactory

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_auditor_exports_a_search_streamed_and_as_a_job(live_server, celery_worker, page, settings, tmp_path):
    settings.GAVEL_EXPORT_DIR = tmp_path / "exports"
    UserFactory(username="avery", role="auditor")
    DecisionFactory.create_batch(3, outcome=Outcome.DENY, user="=cmd|' /C calc'!A0")
    DecisionFactory.create_batch(2)
    violations = []
    page.on("console", lambda message: violations.append(message.text)
            if "Content Security Policy" in message.text else None)

    page.goto(f"{live_server.url}/login/")
    page.fill("#id_username", "avery")
    page.fill("#id_password", "correct horse battery staple")
    page.click("button[type=submit]")
    page.goto(f"{live_server.url}/audit/")
    page.select_option("#id_outcome", "deny")
    expect(page.get_by_test_id("result-count")).to_have_text("3 decisions")

    form = page.get_by_test_id("export-form")
    with page.expect_download() as streamed:
        form.get_by_role("button", name="Export").click()
    body = open(streamed.value.path(), "rb").read()
    assert body.decode().count("\n") == 4 and ",'=cmd|' /C calc'!A0," in body.decode()  # header + 3, neutralised

    form.locator("select[name=format]").select_option("jsonl")
    form.locator("input[name=as_job]").check()
    form.get_by_role("button", name="Export").click()
    page.wait_for_url(re.compile(r"/audit/exports/\d+/$"))
    # The progress partial polls until the job is done, then offers the file.
    expect(page.get_by_test_id("export-status")).to_have_attribute("data-status", "done", timeout=20000)
    with page.expect_download() as job_file:
        page.get_by_test_id("export-download").click()
    data = open(job_file.value.path(), "rb").read()

    record = ExportRecord.objects.get(delivery=ExportRecord.Delivery.JOB)
    manifest = json.loads(page.request.get(f"{live_server.url}/audit/exports/{record.pk}/manifest.json").body())
    assert manifest["sha256"] == hashlib.sha256(data).hexdigest() and manifest["row_count"] == 3
    assert manifest["filter"]["query"] == "outcome=deny"
    page.goto(f"{live_server.url}/audit/exports/")
    expect(page.get_by_test_id("export-list").locator("tbody tr")).to_have_count(2)
    assert not violations
