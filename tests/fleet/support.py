"""Helpers for the fleet tests: more real OPA servers, and a webhook receiver."""
from __future__ import annotations

import json
import subprocess
import threading
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from django.conf import settings

from core.opa.client import opa_client
from tests.support import stack

import s3_server  # noqa: E402,I001  (scripts/s3_server.py, on the path tests.support set up)


@contextmanager
def extra_opa(tmp_path, log_url: str, labels: dict, extra_config: dict | None = None):
    """One more `opa run --server`, stopped (and emptied of Gavel's modules) afterwards."""
    port = stack.free_port()
    proc = stack.start_opa(tmp_path, port, log_url, settings.GAVEL_OPA_TOKEN, labels, extra_config)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        stack.stop_process(proc, "extra OPA")


@contextmanager
def opa_with_token_file(tmp_path, gavel_url: str, token: str, labels: dict):
    """An OPA that reads its token to Gavel from a file on every request, as the README
    recommends: writing the file is how its token is rotated. Yields (url, token file)."""
    token_file = tmp_path / "gavel-token"
    token_file.write_text(token)
    port = stack.free_port()
    proc = stack.start_opa(tmp_path, port, f"{gavel_url}/api/v1/opa", "", labels, token_path=token_file)
    try:
        yield f"http://127.0.0.1:{port}", token_file
    finally:
        stack.stop_process(proc, "OPA with a token file")


@contextmanager
def opa_with_gavel_authz(home, files: dict[str, str], config: dict, port: int | None = None):
    """`opa run` with token authentication and Gavel's system.authz policy (opa_authz.py), the
    files `manage.py opa_authz` writes, and `config` as its configuration. Yields its URL."""
    home.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        (home / name).write_text(text)
    (home / "opa-config.json").write_text(json.dumps(config))
    port = port or stack.free_port()
    log = open(home / "opa.log", "ab")
    proc = subprocess.Popen(
        [str(stack.opa_binary()), "run", "--server", "--addr", f"127.0.0.1:{port}", "--log-level", "error",
         "--authentication=token", "--authorization=basic", "--config-file", str(home / "opa-config.json"),
         str(home / "gavel-authz.rego")],
        cwd=home, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        stack.wait_for_port(port, "OPA", proc=proc)
        yield f"http://127.0.0.1:{port}"
    finally:
        stack.stop_process(proc, "OPA with Gavel's authz")
        log.close()


@contextmanager
def s3_bucket_server(home):
    """A real S3 server (versitygw, scripts/s3_server.py) on free ports with fresh keys and the
    bundles bucket OPA's key may read. Yields (endpoint URL, credentials). Waits for the server's
    build when `make test` started it."""
    ports = s3_server.Ports(s3=stack.free_port(), admin=stack.free_port())
    credentials = s3_server.new_credentials()
    proc = s3_server.start_s3(home, ports, credentials)
    try:
        yield f"http://127.0.0.1:{ports.s3}", credentials
    finally:
        stack.stop_process(proc, "versitygw")


def forget_gavel_modules(url: str) -> None:
    with opa_client(url) as client:
        for policy_id in client.list_policy_ids():
            if policy_id.startswith(("gavel/", "gavel_entry/")):
                client.delete_policy(policy_id)


class WebhookReceiver:
    """Collects the JSON bodies POSTed to it."""

    def __init__(self):
        received = self.received = []

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                received.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
                self.send_response(204)
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()
