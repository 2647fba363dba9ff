"""Export files expire: retention deletes a job's file after GAVEL_EXPORT_RETENTION_DAYS (and what
dead jobs left), the record and its hash stay so a kept copy still verifies, a download of an
expired export is 410 Gone, and an auditor may delete their own export's file early."""
import hashlib
import html
import json
import os
import shutil
from datetime import timedelta

import pytest
from django.utils import timezone
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from activity import entries
from activity.models import ExportRecordEvent
from core.models import Outcome
from exports import retention as export_retention
from exports import services as exports
from exports import signing
from exports import verify_gavel_export as verifier
from exports.models import ExportRecord
from exports.tasks import expire_export_files
from tests.exports.archives import unpack
from tests.factories import DecisionFactory, UserFactory
from tests.support import wait_until

LONG_AGO = timedelta(days=31)  # past the default retention of 30 days


@pytest.fixture
def export_dir(settings, tmp_path):
    settings.GAVEL_EXPORT_DIR = tmp_path / "exports"
    settings.GAVEL_EXPORT_RETENTION_DAYS = 30
    return settings.GAVEL_EXPORT_DIR


def finished_job(user, query="", fmt="csv") -> ExportRecord:
    """An export job run to the end, as the worker does once the request has committed."""
    return exports.run_job(exports.start_export(user, query, fmt, as_job=True).pk)


def written_long_ago(record: ExportRecord) -> ExportRecord:
    ExportRecord.objects.filter(pk=record.pk).update(created_at=timezone.now() - LONG_AGO - timedelta(hours=1),
                                                     finished_at=timezone.now() - LONG_AGO)
    return ExportRecord.objects.get(pk=record.pk)


def left_by_a_dead_job(export_dir, name: str, age: timedelta):
    """A partial file as run_job names it, last written `age` ago."""
    export_dir.mkdir(parents=True, exist_ok=True)
    partial = export_dir / f"{name}.4242-deadbeef.part"
    partial.write_text("decision_id,timestamp\nhalf-written")
    when = (timezone.now() - age).timestamp()
    os.utime(partial, (when, when))
    return partial


def retention_rows(record):
    return [row for row in entries.rows(entries.log().across(ExportRecordEvent).filter(pgh_obj_id=record.pk))
            if row.actor_label == "Gavel (retention)"]


@pytest.mark.django_db(transaction=True)
def test_the_worker_deletes_files_past_retention_keeps_fresh_ones_and_runs_again_harmlessly(
        client, make_user, celery_worker, export_dir):
    DecisionFactory.create_batch(3, outcome=Outcome.DENY, input={"user": {"email": "dana@example.com"}})
    auditor = make_user("auditor", username="avery")
    old, fresh, vanished = (exports.start_export(auditor, "", "csv", as_job=True) for _ in range(3))
    wait_until(lambda: ExportRecord.objects.filter(status=ExportRecord.Status.DONE).count() == 3,
               message="the three export jobs to finish")
    old, vanished = written_long_ago(old), written_long_ago(vanished)
    exports.export_path(vanished).unlink()  # someone removed it by hand: retention must not trip over it
    dead_partial = left_by_a_dead_job(export_dir, "gavel-decisions-9999.csv", LONG_AGO)
    live_partial = left_by_a_dead_job(export_dir, "gavel-decisions-9998.csv", timedelta(minutes=1))

    expire_export_files.delay()  # what beat sends every hour

    wait_until(lambda: ExportRecord.objects.filter(expired_at__isnull=False).count() == 2,
               message="retention to expire the two old exports")
    wait_until(lambda: not dead_partial.exists(), message="retention to delete the dead job's partial file")
    old_now, fresh_now = ExportRecord.objects.get(pk=old.pk), ExportRecord.objects.get(pk=fresh.pk)
    assert not exports.export_path(old).exists() and exports.export_path(fresh).exists() and live_partial.exists()
    assert fresh_now.expired_at is None
    # The record keeps what it vouched for: status, hash, size, rows.
    assert (old_now.status, old_now.sha256, old_now.size_bytes, old_now.row_count) == (
        ExportRecord.Status.DONE, old.sha256, old.size_bytes, 3)
    assert old_now.expired_by is None and ExportRecord.objects.get(pk=vanished.pk).expired_at is not None
    # The activity log says Gavel's retention did it, through the periodic task.
    [row] = retention_rows(old)
    assert row.actor == "" and row.via == "task exports.tasks.expire_export_files"
    assert {change.field for change in row.changes} == {"expired_at"}
    client.force_login(make_user("security_admin"))
    page = client.get("/activity/", {"model": "export-record", "object": str(old.pk)}).content.decode()
    assert "Gavel (retention)" in page

    again = expire_export_files.apply().get()  # the same task, run once more at once

    assert again == {"expired": [], "swept": []}
    assert len(retention_rows(old)) == 1 and exports.export_path(fresh).exists()


@pytest.mark.django_db
def test_a_download_of_an_expired_export_is_gone_with_the_reason_on_the_page_and_the_api(client, make_user,
                                                                                       export_dir):
    DecisionFactory()
    auditor = make_user("auditor")
    record = written_long_ago(finished_job(auditor))
    export_retention.expire_old_exports()
    today = f"{timezone.now():%Y-%m-%d}"
    client.force_login(auditor)

    page = client.get(f"/audit/exports/{record.pk}/download/")
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Token {Token.objects.create(user=auditor).key}")
    answer = api.get(f"/api/v1/exports/{record.pk}/download/")

    said = (f"Export {record.pk} expired on {today}: its file was deleted by Gavel's retention "
            "(export files are kept 30 days)")
    assert page.status_code == 410 and said in html.unescape(page.content.decode())
    assert answer.status_code == 410 and answer.json()["detail"].startswith(said)
    assert "verify_gavel_export.py" in answer.json()["detail"]
    listed = client.get("/audit/exports/").content.decode()
    assert f"expired on {today}" in listed and f"/audit/exports/{record.pk}/download/" not in listed
    detail = client.get(f"/audit/exports/{record.pk}/").content.decode()
    assert f"Expired on {today}" in detail and "/download/" not in detail and "delete-file" not in detail
    assert api.get(f"/api/v1/exports/{record.pk}/").json()["expired_at"].startswith(today)


@pytest.mark.django_db
def test_a_download_under_way_completes_when_retention_deletes_its_file(client, make_user, export_dir):
    DecisionFactory.create_batch(50, input={"padding": "x" * 2000})  # many of FileResponse's blocks
    auditor = make_user("auditor")
    record = written_long_ago(finished_job(auditor))
    client.force_login(auditor)

    response = client.get(f"/audit/exports/{record.pk}/download/")  # opened, nothing read yet
    first = next(iter(response.streaming_content))
    assert export_retention.expire_old_exports()["expired"] == [record.pk]
    data, manifest = unpack(first + b"".join(response.streaming_content))

    assert response.status_code == 200 and not exports.export_path(record).exists()
    assert hashlib.sha256(data).hexdigest() == record.sha256 == manifest["sha256"]
    assert client.get(f"/audit/exports/{record.pk}/download/").status_code == 410


@pytest.mark.django_db
def test_a_copy_kept_before_expiry_still_verifies_against_the_record(client, make_user, export_dir, tmp_path):
    DecisionFactory.create_batch(4, outcome=Outcome.DENY)
    auditor = make_user("auditor")
    record = written_long_ago(finished_job(auditor, "outcome=deny", "jsonl"))
    kept = tmp_path / "kept.jsonl"
    shutil.copy(exports.export_path(record), kept)

    export_retention.expire_old_exports()
    client.force_login(auditor)
    manifest = tmp_path / "manifest.json"
    manifest.write_bytes(client.get(f"/audit/exports/{record.pk}/manifest.json").content)  # after expiry

    assert not exports.export_path(record).exists()
    assert json.loads(manifest.read_text())["file_expired_at"] is not None
    status, problems, said = verifier.verify([str(kept), str(manifest)], signing.public_key())
    assert (status, problems, said["row_count"]) == (verifier.GOOD, [], 4)


@pytest.mark.django_db
def test_a_job_that_died_long_ago_is_closed_and_what_it_left_deleted(make_user, export_dir):
    DecisionFactory()
    record = exports.start_export(make_user("auditor"), "", "csv", as_job=True)  # no worker ever ran it
    ExportRecord.objects.filter(pk=record.pk).update(status=ExportRecord.Status.RUNNING,
                                                     created_at=timezone.now() - LONG_AGO)
    partial = left_by_a_dead_job(export_dir, record.download_name, timedelta(minutes=5))

    assert export_retention.expire_old_exports() == {"expired": [record.pk], "swept": []}

    record.refresh_from_db()
    assert not partial.exists() and record.expired_at is not None
    assert record.status == ExportRecord.Status.FAILED and record.error == export_retention.DIED_UNFINISHED
    exports.run_job(record.pk)  # the task delivered late: it writes nothing for an expired export
    assert list(export_dir.iterdir()) == []


@pytest.mark.django_db
def test_retention_of_zero_days_keeps_files_forever(make_user, export_dir, settings):
    DecisionFactory()
    record = written_long_ago(finished_job(make_user("auditor")))
    settings.GAVEL_EXPORT_RETENTION_DAYS = 0

    assert export_retention.expire_old_exports() == {"expired": [], "swept": []}
    assert exports.export_path(record).exists() and ExportRecord.objects.get(pk=record.pk).expired_at is None


@pytest.mark.django_db
def test_an_auditor_deletes_their_own_exports_file_early_and_nobody_elses(client, make_user, export_dir):
    DecisionFactory()
    owner, other = make_user("auditor", username="olive"), make_user("auditor", username="oscar")
    record, queued = finished_job(owner), exports.start_export(owner, "", "csv", as_job=True)
    api = APIClient()

    for user in (other, make_user("security_admin")):
        client.force_login(user)
        api.credentials(HTTP_AUTHORIZATION=f"Token {Token.objects.create(user=user).key}")
        assert client.post(f"/audit/exports/{record.pk}/delete-file/").status_code == 403
        assert api.post(f"/api/v1/exports/{record.pk}/delete-file/").status_code == 403
        assert "delete-file" not in client.get(f"/audit/exports/{record.pk}/").content.decode()
    assert exports.export_path(record).exists()

    client.force_login(owner)
    assert 'data-testid="export-delete-file"' in client.get(f"/audit/exports/{record.pk}/").content.decode()
    deleted = client.post(f"/audit/exports/{record.pk}/delete-file/", follow=True)
    refused = client.post(f"/audit/exports/{queued.pk}/delete-file/", follow=True).content.decode()

    record.refresh_from_db()
    assert not exports.export_path(record).exists() and record.expired_by == owner and record.sha256
    assert "The file of export" in deleted.content.decode() and "Expired on" in deleted.content.decode()
    assert "Only a finished export has a file to delete." in refused
    gone = client.get(f"/audit/exports/{record.pk}/download/")
    assert gone.status_code == 410 and "its file was deleted early by olive." in gone.content.decode()
    api.credentials(HTTP_AUTHORIZATION=f"Token {Token.objects.create(user=owner).key}")
    again = api.post(f"/api/v1/exports/{record.pk}/delete-file/")  # twice is harmless
    assert again.status_code == 200 and again.json()["expired_by"] == "olive"
    [row] = [r for r in entries.rows(entries.log().across(ExportRecordEvent).filter(pgh_obj_id=record.pk))
             if r.action == "update" and any(c.field == "expired_by_id" for c in r.changes)]
    assert row.actor == "olive" and row.via == f"/audit/exports/{record.pk}/delete-file/"


@pytest.mark.django_db
def test_someone_elses_export_takes_the_delete_permission_no_role_holds(export_dir):
    DecisionFactory()
    record = finished_job(UserFactory(role="auditor"))
    admin = UserFactory(is_superuser=True)

    export_retention.delete_file(record, admin)

    assert not exports.export_path(record).exists() and record.expired_by == admin
