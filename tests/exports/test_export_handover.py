"""What an auditor hands over: the count the page showed is the count in the file, the time window
is frozen and stated, and a streamed export can be downloaded again, as an archive, while kept."""
import hashlib
import io
import re
from datetime import timedelta

import pytest
from django.utils import timezone

from core.models import Outcome
from exports import services as exports
from exports import signing
from exports.formats import count_rows
from exports.models import ExportRecord
from tests.exports.archives import unpack
from tests.factories import DecisionFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def auditor_client(client, make_user, settings, tmp_path):
    settings.GAVEL_EXPORT_DIR = tmp_path / "exports"
    client.force_login(make_user("auditor", username="avery"))
    return client


def test_the_export_holds_the_decisions_the_page_counted_even_with_an_until_in_the_future(auditor_client):
    until = (timezone.now() + timedelta(days=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    DecisionFactory.create_batch(14, outcome=Outcome.DENY)
    page = auditor_client.get("/audit/", {"outcome": "deny", "until": until}).content.decode()
    assert "14 decisions" in page
    as_of = re.search(r'name="as_of" value="([^"]+)"', page)[1]
    DecisionFactory.create_batch(3, outcome=Outcome.DENY)  # arrive while the auditor reads the page

    response = auditor_client.post("/audit/exports/new/", {"query": f"outcome=deny&until={until}",
                                                           "format": "jsonl", "as_of": as_of})
    data, manifest = unpack(b"".join(response.streaming_content))

    record = ExportRecord.objects.get()
    assert count_rows("jsonl", io.BytesIO(data)) == 14 == record.row_count == record.expected_rows
    assert not record.count_differs
    stored_by = record.as_of.isoformat().replace("+00:00", "Z")
    assert manifest["window"] == {"from": None, "until": until, "stored_by": stored_by, "until_after_start": True}
    assert manifest["expected_rows"] == 14 == manifest["row_count"]
    assert manifest["filter"]["readable"] == (f"Until (UTC): {until} (later than the export's start); Outcome: Deny; "
                                              f"decisions Gavel had stored by {stored_by}")
    detail = auditor_client.get(f"/audit/exports/{record.pk}/").content.decode()
    # The page says the same time in words, to the second (the manifest keeps the exact ISO time).
    assert f"decisions Gavel had stored by {record.as_of:%Y-%m-%d %H:%M:%S} UTC, when the export started" in detail
    assert "(later than the start)" in detail and "export-count-differs" not in detail

    # Without the page's moment (the API, or a later click), the export freezes at its own start: 17.
    assert exports.start_export(record.created_by, f"outcome=deny&until={until}", "csv").expected_rows == 17


def test_when_the_file_holds_another_number_than_counted_the_pages_say_so(auditor_client):
    DecisionFactory.create_batch(2)
    record = exports.start_export(auditor_client.get("/audit/").wsgi_request.user, "", "csv")
    b"".join(exports.stream_export(record))
    ExportRecord.objects.filter(pk=record.pk).update(expected_rows=3)  # as if one was dropped by retention since

    detail = auditor_client.get(f"/audit/exports/{record.pk}/").content.decode()
    assert 'data-testid="export-count-differs"' in detail and "counted 3 decisions" in detail
    assert "(counted 3)" in auditor_client.get("/audit/exports/").content.decode()


def test_a_streamed_export_can_be_downloaded_again_as_the_same_archive_while_kept(auditor_client):
    DecisionFactory.create_batch(4, reasons=["=HYPERLINK(\"x\")"])
    first = auditor_client.post("/audit/exports/new/", {"query": "", "format": "csv"})
    data, manifest = unpack(b"".join(first.streaming_content))
    record = ExportRecord.objects.get()
    assert record.delivery == ExportRecord.Delivery.STREAM and record.has_file

    again = auditor_client.get(f"/audit/exports/{record.pk}/download/")
    assert again.status_code == 200 and again["Content-Type"] == "application/zip"
    assert again["Content-Disposition"] == f'attachment; filename="gavel-export-{record.pk}.zip"'
    data_again, manifest_again = unpack(b"".join(again.streaming_content))
    assert data_again == data and hashlib.sha256(data).hexdigest() == record.sha256 == manifest_again["sha256"]
    assert manifest_again == manifest

    listed = auditor_client.get("/audit/exports/").content.decode()
    assert f"/audit/exports/{record.pk}/download/" in listed
    assert signing.public_key() in listed and "/audit/exports/verify_gavel_export.py" in listed
    verifier_file = auditor_client.get("/audit/exports/verify_gavel_export.py")
    assert b"".join(verifier_file.streaming_content).startswith(b"#!/usr/bin/env python3")
