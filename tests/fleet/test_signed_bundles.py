"""Signed bundles: every bundle Gavel builds carries `.signatures.json` in OPA's format; a real OPA
configured as the environments page says activates it, and refuses one altered on its way, one
signed with another key and one without a signature, which Gavel's page and API then say in words."""
import base64
import gzip
import io
import json
import os
import subprocess
import sys
import tarfile
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import jwt
import pytest
import yaml
from django.urls import reverse

from core.opa.client import opa_client
from fleet import bundles
from fleet.delivery import signing
from fleet import credentials as opa_credentials
from fleet.models import Environment, OpaInstance
from policies import services
from policies.models import Publication
from tests.factories import PolicyFactory
from tests.fleet.support import extra_opa
from tests.support import stack, wait_until

ROOT = Path(__file__).resolve().parents[2]
# Strings Go's JSON encoder writes differently from Python's unless handled (signing.structured_bytes).
HOSTILE = ["line\u2028sep\u2029para", "<&>", "\x01\b\f\x00\x7f", "é \U0001F680 \u202e", 'quote " back \\ slash']


def members(body: bytes) -> dict[str, bytes]:
    with tarfile.open(fileobj=io.BytesIO(gzip.decompress(body))) as tar:
        return {m.name.lstrip("/"): tar.extractfile(m).read() for m in tar.getmembers()}


def repack(files: dict[str, bytes]) -> bytes:
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(f"/{name}")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return gzip.compress(raw.getvalue())


def opa_verifies(tmp_path, body: bytes) -> subprocess.CompletedProcess:
    """`opa build` checks a signed bundle against a key the way a pulling OPA does."""
    (tmp_path / "bundle.tar.gz").write_bytes(body)
    (tmp_path / "gavel.pem").write_text(signing.public_key_pem())
    return subprocess.run([str(stack.opa_binary()), "build", "-b", "bundle.tar.gz", "-o", "out.tar.gz",
                           "--verification-key", "gavel.pem", "--verification-key-id", signing.KEY_ID,
                           "--signing-alg", signing.ALGORITHM], cwd=tmp_path, stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, text=True)


def test_the_signature_lists_every_file_with_its_hash_and_is_the_same_for_the_same_files():
    data = {"gavel_config": {"reasons": HOSTILE, "nested": {"b": [1, 2.5, None, True, {}], "a": 10 ** 20}}}
    bundle = bundles.tarball({".manifest": {"revision": "budget@1", "roots": ["gavel"]}, "data.json": data,
                              "gavel/budget/policy.rego": "package gavel.budget\n"}, "budget@1")
    files = members(bundle.body)
    assert list(files)[0] == ".signatures.json"
    [token] = json.loads(files.pop(".signatures.json"))["signatures"]
    header = jwt.get_unverified_header(token)
    assert header["alg"] == "ES256" and header["kid"] == "gavel"
    claims = jwt.decode(token, signing.public_key_pem(), algorithms=["ES256"])
    assert {f["name"] for f in claims["files"]} == set(files)
    assert all(f["algorithm"] == "SHA-256" and f["hash"] == signing.file_hash(f["name"], files[f["name"]])
               for f in claims["files"])
    again = bundles.tarball({".manifest": {"revision": "budget@1", "roots": ["gavel"]}, "data.json": data,
                             "gavel/budget/policy.rego": "package gavel.budget\n"}, "budget@1")
    assert again.body == bundle.body and again.etag == bundle.etag  # deterministic ECDSA: no new download


def test_opa_accepts_gavels_signature_and_refuses_an_altered_or_foreign_one(tmp_path):
    data = {"gavel_config": {"reasons": HOSTILE, "numbers": [0, -1, 1.25, 10 ** 20]}, "gavel_approvals": {}}
    body = bundles.tarball({".manifest": {"revision": "budget@1", "roots": ["gavel", "gavel_config", "gavel_approvals"]},
                            "data.json": data, "gavel/budget/policy.rego": "package gavel.budget\n\nx := 1\n"},
                           "budget@1").body
    accepted = opa_verifies(tmp_path, body)
    assert accepted.returncode == 0, accepted.stdout

    files = members(body)
    altered = dict(files, **{"gavel/budget/policy.rego": b"package gavel.budget\n\nx := 2\n"})
    refused = opa_verifies(tmp_path, repack(altered))
    assert refused.returncode != 0 and "digest mismatch" in refused.stdout
    foreign_key = base64.b64encode(os.urandom(32)).decode()
    foreign = dict(files, **{".signatures.json": signing.signatures_file(
        {n: d for n, d in files.items() if n != ".signatures.json"}, foreign_key)})
    refused = opa_verifies(tmp_path, repack(foreign))
    assert refused.returncode != 0 and "failed to verify JWT signature" in refused.stdout


def test_the_refusals_opa_reports_are_put_in_words():
    said = bundles.refusal_in_words
    assert "altered after Gavel signed it" in said("gavel/x/policy.rego: digest mismatch (want: 00, got: 01)")
    assert "not from Gavel's bundle signing key" in said("failed to verify JWT signature: could not verify")
    assert said("bundle missing .signatures.json file") == "OPA refused the bundle: it is not signed"
    assert "no key to check" in said("verification key not provided")
    assert said("server replied with HTTP 500") == ""


def test_without_debug_a_missing_or_malformed_bundle_signing_key_is_a_clear_error():
    env = {"PATH": "/usr/bin:/bin", "DEBUG": "0", "SECRET_KEY": "x" * 50, "GAVEL_OPA_TOKEN": "t" * 30,
           "GAVEL_EXPORT_SIGNING_KEY": base64.b64encode(os.urandom(32)).decode(),
           "DATABASE_URL": "postgres://nobody@127.0.0.1:9/none"}
    for key, said in ((None, "GAVEL_BUNDLE_SIGNING_KEY must be set when DEBUG is off"),
                      ("c2hvcnQ=", "GAVEL_BUNDLE_SIGNING_KEY is not usable as the key that signs OPA bundles")):
        run = subprocess.run([sys.executable, "manage.py", "check"], cwd=ROOT, capture_output=True, text=True,
                             env={**env, **({"GAVEL_BUNDLE_SIGNING_KEY": key} if key else {})}, timeout=60)
        assert run.returncode != 0 and said in run.stderr


class TamperingProxy:
    """Stands between OPA and Gavel's OPA API: passes everything through, but in mode `altered`,
    `foreign` or `unsigned` changes the bundle Gavel served on its way to OPA."""

    def __init__(self, gavel_url: str):
        self.mode = "pass"
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            def _forward(self, method):
                length = int(self.headers.get("Content-Length") or 0)
                headers = {k: v for k, v in self.headers.items()
                           if k.lower() in ("authorization", "content-type", "content-encoding")}
                answer = httpx.request(method, f"{gavel_url}{self.path}", headers=headers,
                                       content=self.rfile.read(length) if length else None, timeout=10)
                body = answer.content
                if method == "GET" and answer.status_code == 200 and "/bundles/" in self.path:
                    body = proxy.tamper(body)
                self.send_response(answer.status_code)
                self.send_header("Content-Type", answer.headers.get("Content-Type", "application/json"))
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_GET(self):
                self._forward("GET")

            def do_POST(self):
                self._forward("POST")

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def tamper(self, body: bytes) -> bytes:
        files = members(body)
        if self.mode == "altered":  # the policy loosened on its way: allow everyone
            name = next(n for n in files if n.endswith("policy.rego"))
            files[name] += b"\nallow if true\n"
        elif self.mode == "foreign":  # re-signed by someone else's key
            files[".signatures.json"] = signing.signatures_file(
                {n: d for n, d in files.items() if n != ".signatures.json"}, base64.b64encode(os.urandom(32)).decode())
        elif self.mode == "unsigned":
            files.pop(".signatures.json")
        return repack(files) if self.mode != "pass" else body

    def close(self):
        self.server.shutdown()
        self.server.server_close()


def instance_detail(environment, name="edge-1") -> str:
    instance = OpaInstance.objects.filter(environment=environment, name=name).first()
    return "" if instance is None or instance.healthy is not False else instance.status_detail


@pytest.mark.django_db(transaction=True)
def test_an_opa_configured_from_the_page_activates_signed_bundles_and_refuses_tampered_ones(
        opa, live_server, celery_worker, make_user, tmp_path, client):
    policy = PolicyFactory(name="budget")
    admin = make_user("security_admin")
    edge = Environment.objects.create(name="edge", delivery=Environment.Delivery.PULL)
    instance, token = opa_credentials.add_instance(edge, "edge-1")
    (tmp_path / "gavel-token").write_text(token)
    client.force_login(admin)
    page = client.get(reverse("fleet:environments")).content.decode()
    assert signing.public_key_pem().strip().splitlines()[1] in page and signing.fingerprint() in page

    # The configuration shown for the environment, as an operator would paste it: only Gavel's
    # address (here the proxy's), the token file and a faster polling differ.
    config = yaml.safe_load(signing.opa_config("edge", "https://gavel.example.com/api/v1/opa"))
    assert "keys:" in page and "resource: bundles/edge" in page and "signing: {keyid: gavel}" in page
    proxy = TamperingProxy(live_server.url)
    config["services"]["gavel"]["url"] = f"{proxy.url}/api/v1/opa"
    config["services"]["gavel"]["credentials"]["bearer"]["token_path"] = str(tmp_path / "gavel-token")
    config["bundles"]["edge"]["polling"] = {"min_delay_seconds": 1, "max_delay_seconds": 2}
    config.pop("decision_logs")  # no decision is asked of this OPA; the stack's logging config stays
    v1 = policy.latest_version
    try:
        with extra_opa(tmp_path / "opa", f"{live_server.url}/api/v1/opa", {"instance": "edge-1"}, config) as url:
            services.request_publication(v1, requested_by=admin, environment=edge)
            wait_until(lambda: policy.active_version_in(edge) == v1, timeout=30, message="OPA activating v1")

            v2 = services.save_version(policy, source=v1.source.replace('"admin"', '"owner"'),
                                       author=make_user("policy_author"), message="owner")
            publication = services.request_publication(v2, requested_by=admin, environment=edge)
            for mode, words in (("altered", "its content does not match its signature: it was altered after "
                                            "Gavel signed it"),
                                ("foreign", "its signature is not from Gavel's bundle signing key"),
                                ("unsigned", "OPA refused the bundle: it is not signed")):
                proxy.mode = mode
                detail = wait_until(lambda: words in instance_detail(edge) and instance_detail(edge),
                                    timeout=30, message=f"OPA's refusal of the {mode} bundle")
                assert detail.startswith("bundle edge: OPA refused the bundle")
                assert Publication.objects.get(pk=publication.pk).status == Publication.Status.QUEUED
                with opa_client(url) as edge_opa:  # OPA keeps what it ran, v1
                    modules = {p["id"]: p["raw"] for p in edge_opa.list_policies()}
                assert modules["edge/gavel/budget/policy.rego"] == v1.source

            page = client.get(reverse("fleet:environments")).content.decode()
            assert "unhealthy" in page and "OPA refused the bundle: it is not signed" in page
            api = client.get(f"/api/v1/environments/{edge.name}/").json()
            [shown] = [i for i in api["instances"] if i["name"] == "edge-1"]
            assert shown["healthy"] is False and "OPA refused the bundle: it is not signed" in shown["status_detail"]

            proxy.mode = "pass"  # Gavel's own bundle again: v2 is activated and confirmed
            wait_until(lambda: Publication.objects.get(pk=publication.pk).status == Publication.Status.OK,
                       timeout=30, message="OPA activating the signed v2")
            instance.refresh_from_db()
            assert instance.healthy is True and instance.active_revision == "budget@2"
    finally:
        proxy.close()
