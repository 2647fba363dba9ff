"""An auditor exports a search from the audit trail in Chromium (1280 and 400 px wide): a streamed
archive they check with the stand-alone verifier on a copy outside the project, downloaded again from
the exports page; then a job whose progress the page follows until its archive can be downloaded."""
import hashlib
import json
import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from playwright.sync_api import expect

from core.models import Outcome
from exports.models import ExportRecord
from tests.exports.archives import unpack
from tests.factories import DecisionFactory, UserFactory
from tests.support import browser_page

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]
SHOTS = Path("/tmp/gavel-export-shots")


def log_in(page, live_server):
    page.goto(f"{live_server.url}/login/")
    page.fill("#id_username", "avery")
    page.fill("#id_password", "correct horse battery staple")
    page.click("button[type=submit]")
    page.wait_for_url(re.compile(r"/$"))


def verify(workdir: Path, *args) -> subprocess.CompletedProcess:
    """The downloaded verifier, run as an auditor would: isolated Python, outside the project, no settings."""
    return subprocess.run([sys.executable, "-I", str(workdir / "verify_gavel_export.py"), *map(str, args)],
                          cwd=workdir, env={}, capture_output=True, text=True, timeout=60)


def fits(page) -> bool:
    return page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")


@pytest.mark.parametrize("width", [1280, 400])
def test_auditor_downloads_an_archive_and_verifies_it_outside_gavel(live_server, browser, settings, tmp_path, width):
    settings.GAVEL_EXPORT_DIR = tmp_path / "exports"
    UserFactory(username="avery", role="auditor")
    DecisionFactory.create_batch(3, outcome=Outcome.DENY, user="=cmd|' /C calc'!A0")
    DecisionFactory.create_batch(2)
    handover = tmp_path / "handed-over"  # outside the project: what the auditor gives away
    handover.mkdir()
    SHOTS.mkdir(exist_ok=True)
    with browser_page(browser, width, 900) as page:
        violations = []
        page.on("console", lambda message: violations.append(message.text)
                if "Content Security Policy" in message.text else None)
        log_in(page, live_server)
        page.goto(f"{live_server.url}/audit/?outcome=deny")
        expect(page.get_by_test_id("result-count")).to_have_text("3 decisions")
        form = page.get_by_test_id("export-form")
        expect(form).to_contain_text("Export these 3 decisions as")
        with page.expect_download() as streamed:
            form.get_by_role("button", name="Export").click()
        archive = handover / streamed.value.suggested_filename
        streamed.value.save_as(archive)
        data, manifest = unpack(archive.read_bytes())
        assert archive.name == f"gavel-export-{manifest['export_id']}.zip"
        assert data.decode().count("\r\n") == 4 and ",'=cmd|' /C calc'!A0," in data.decode()  # neutralised

        page.goto(f"{live_server.url}/audit/exports/")
        key = page.get_by_test_id("public-key").inner_text().strip()
        with page.expect_download() as verifier:
            page.get_by_test_id("verifier-link").click()
        verifier.value.save_as(handover / "verify_gavel_export.py")
        assert fits(page), "the exports page scrolls sideways"
        page.screenshot(path=str(SHOTS / f"exports-list-{width}.png"), full_page=True)

        good = verify(handover, archive, "--public-key", key)
        assert good.returncode == 0 and "GOOD" in good.stdout and "3 rows" in good.stdout, good.stderr

        tampered = handover / "tampered.zip"
        with zipfile.ZipFile(archive) as original, zipfile.ZipFile(tampered, "w") as copy:
            names = original.namelist()
            copy.writestr(names[0], data.replace(b"calc", b"cal0", 1))
            copy.writestr(names[1], original.read(names[1]))
        assert verify(handover, tampered, "--public-key", key).returncode == 1
        (handover / "data.csv").write_bytes(data)
        unsigned = {k: v for k, v in manifest.items() if k != "signature"}
        (handover / "unsigned.json").write_text(json.dumps(unsigned))
        assert verify(handover, handover / "data.csv", handover / "unsigned.json", "--public-key", key).returncode == 2

        # Downloaded again from its page: the same file and signed manifest.
        page.get_by_test_id("export-list").get_by_role("link", name=str(manifest["export_id"]), exact=True).click()
        expect(page.get_by_test_id("export-filter")).to_contain_text("Outcome: Deny")
        expect(page.get_by_test_id("export-window")).to_contain_text("decisions Gavel had stored by")
        assert "None" not in page.get_by_test_id("export-filter").inner_text()
        assert fits(page), "the export page scrolls sideways"
        page.screenshot(path=str(SHOTS / f"export-detail-{width}.png"), full_page=True)
        with page.expect_download() as again:
            page.get_by_test_id("export-download").click()
        copy = handover / "again.zip"
        again.value.save_as(copy)
        assert unpack(copy.read_bytes())[0] == data
        assert verify(handover, copy, "--public-key", key).returncode == 0
        assert not violations


def test_auditor_follows_a_job_until_its_archive_is_ready(live_server, celery_worker, page, settings, tmp_path):
    settings.GAVEL_EXPORT_DIR = tmp_path / "exports"
    UserFactory(username="avery", role="auditor")
    DecisionFactory.create_batch(3, outcome=Outcome.DENY)
    DecisionFactory.create_batch(2)
    log_in(page, live_server)
    page.goto(f"{live_server.url}/audit/?outcome=deny")
    form = page.get_by_test_id("export-form")
    form.locator("select[name=format]").select_option("jsonl")
    form.locator("input[name=as_job]").check()
    form.get_by_role("button", name="Export").click()
    page.wait_for_url(re.compile(r"/audit/exports/\d+/$"))
    # The progress partial polls until the job is done, then offers the archive.
    expect(page.get_by_test_id("export-status")).to_have_attribute("data-status", "done", timeout=20000)
    with page.expect_download() as job_file:
        page.get_by_test_id("export-download").click()
    data, manifest = unpack(Path(job_file.value.path()).read_bytes())

    record = ExportRecord.objects.get(delivery=ExportRecord.Delivery.JOB)
    assert manifest["sha256"] == hashlib.sha256(data).hexdigest() == record.sha256 and manifest["row_count"] == 3
    assert manifest["filter"]["query"] == "outcome=deny"
    shutil.rmtree(settings.GAVEL_EXPORT_DIR, ignore_errors=True)
