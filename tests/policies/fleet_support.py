"""Helpers for the fleet tests: more real OPA servers, and a webhook receiver."""
from __future__ import annotations

import json
import threading
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from django.conf import settings

from policies.opa import opa_client
from tests.support import stack


@contextmanager
def extra_opa(tmp_path, log_url: str, labels: dict, extra_config: dict | None = None):
    """One more `opa run --server`, stopped (and emptied of Gavel's modules) afterwards."""
    port = stack.free_port()
    proc = stack.start_opa(tmp_path, port, log_url, settings.GAVEL_OPA_TOKEN, labels, extra_config)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        stack.stop_process(proc, "extra OPA")


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
