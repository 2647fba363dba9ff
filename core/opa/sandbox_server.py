"""Gavel's own OPA server, for evaluating authors' Rego over many inputs: replay.

`opa eval` (local.py) starts, compiles and parses everything again on every call; a replay of
100,000 decisions wants the candidate compiled once and its inputs sent in batches, several at a
time, so that OPA works on every core. This is an `opa run --server`, sandboxed like every `opa`
process Gavel runs (sandbox.py):

- no environment, and the address-space and CPU-time limits, set in the child (setrlimit);
- no network: it listens on a Unix socket in a private folder (0700), reachable by this user
  only, and has no TCP listener at all;
- it loads only modules that `opa check --capabilities` accepts against the server's
  capabilities (the sandbox's, without the JSON-schema builtins): OPA's server takes no
  capabilities, so `http.send`, `net.lookup_ip_addr`, `opa.runtime` and a schema's remote `$ref`
  are refused before anything is loaded. Rego that needs the schema builtins is evaluated by
  `opa eval` instead (NeedsEval), where `allow_net: []` holds at evaluation time;
- every request under the caller's time limit: one that runs over it kills the server, and
  every request of the run is answered with SandboxRefused, in words.

One server per `with SandboxServer() as opa:`, stopped when the block ends: a replay gets its own,
with the whole CPU and memory budget, and nothing of one run is left for the next.
"""
from __future__ import annotations

import os
import shutil
import signal
import subprocess
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import httpx
from django.conf import settings

from . import sandbox
from .client import OpaClient, OpaRejected, OpaUnreachable
from .local import refusal_body
from .sandbox import SandboxRefused

START_SECONDS = 30


class NeedsEval(SandboxRefused):
    """The Rego calls a builtin only `opa eval` can sandbox (SERVER_DENIED): evaluate it there."""


class SandboxServer:
    def __init__(self, timeout: float | None = None):
        self.timeout = timeout or settings.GAVEL_REPLAY_TIMEOUT_SECONDS
        self.binary = settings.OPA_BINARY
        self.pending: dict[str, str] = {}  # modules put, not yet loaded
        self.checked = False  # whether `opa check` accepted the pending modules
        self.ready = False
        self.folder: Path | None = None
        self.process: subprocess.Popen | None = None
        self.client: OpaClient | None = None
        self.stopped: str = ""  # why the server is gone, once it is
        self._loading = threading.Lock()
        self._stopping = threading.Lock()

    # --- lifecycle ---------------------------------------------------------------------------

    def __enter__(self) -> SandboxServer:
        """Start the server; it comes up while the caller prepares (checks the modules, reads rows)."""
        self.folder = Path(tempfile.mkdtemp(prefix="gavel-opa-server-"))  # 0700, this user's only
        socket_path = self.folder / "opa.sock"
        try:
            with open(self.folder / "opa.log", "wb") as log:
                self.process = sandbox.start(
                    [self.binary, "run", "--server", "--addr", f"unix://{socket_path}", "--unix-socket-perm", "600",
                     "--skip-version-check", "--log-level", "error"], cwd=str(self.folder), output=log)
        except OSError as exc:  # no such binary, ...
            shutil.rmtree(self.folder, ignore_errors=True)
            raise SandboxRefused(f"Gavel's sandboxed OPA server did not start: {exc}") from exc
        # No TLS on a Unix socket, and no proxy from this process's environment between us.
        self.client = OpaClient("http://gavel-sandbox", timeout=self.timeout,
                                transport=httpx.HTTPTransport(uds=str(socket_path), verify=False))
        return self

    def __exit__(self, *exc) -> None:
        self._kill()
        if self.client is not None:
            self.client.__exit__()
        if self.folder is not None:
            shutil.rmtree(self.folder, ignore_errors=True)

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process else None

    def _wait_until_ready(self) -> None:
        deadline = time.monotonic() + START_SECONDS
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise SandboxRefused(f"Gavel's sandboxed OPA server did not start: {self._log()[:1000]}")
            if self.client.healthy(timeout=2):
                self.ready = True
                return
            time.sleep(0.01)
        self._stop(f"Gavel's sandboxed OPA server did not start within {START_SECONDS} seconds")
        raise SandboxRefused(self.stopped)

    def _kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            try:
                os.killpg(self.process.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            self.process.wait()

    def _log(self) -> str:
        """What the server wrote: OPA's errors and, when it crashed, the Go runtime's report."""
        try:
            return (self.folder / "opa.log").read_text(errors="replace").strip()
        except OSError:
            return ""

    # --- modules -----------------------------------------------------------------------------

    def put_policy(self, policy_id: str, source: str) -> None:
        """Load `source` before the next query, once `opa check` has accepted it with the rest."""
        self.pending[policy_id] = source
        self.checked = False

    def delete_policy(self, policy_id: str) -> None:
        if self.pending.pop(policy_id, None) is None and not self.stopped:
            self._call(lambda client: client.delete_policy(policy_id))

    def load(self) -> None:
        """Check what was put, as the server would load it. Raises NeedsEval, SandboxRefused (a removed
        builtin) or OpaRejected (it does not compile). The server meanwhile starts; the modules are
        loaded before the first query."""
        with self._loading:
            self._check()

    def _check(self) -> None:
        """`opa check` of the pending modules together, against the server's capabilities."""
        if self.checked or not self.pending:
            return
        with tempfile.TemporaryDirectory(prefix="gavel-check-") as tmp:
            names = []
            for number, source in enumerate(self.pending.values()):
                (Path(tmp) / f"m{number}.rego").write_text(source, encoding="utf-8")
                names.append(f"m{number}.rego")
            done = sandbox.run(self.binary, ["check", "--format", "json", "--capabilities",
                                             sandbox.capabilities_file(self.binary, server=True), *names],
                               cwd=tmp, timeout=self.timeout)
        if done.returncode != 0:  # (what the sandbox itself refuses, sandbox.run raised already)
            refused = sandbox.refused_builtins(done.stdout, done.stderr, self.binary, server=True)
            if refused and refused <= sandbox.SERVER_DENIED:
                raise NeedsEval(", ".join(sorted(refused)))
            why = sandbox.explain_refusal(done.stdout, done.stderr, self.binary, server=True)
            if why:
                raise SandboxRefused(why)
            raise OpaRejected(400, refusal_body(done.stdout or done.stderr))
        self.checked = True

    def _prepare(self) -> None:
        """Checked, started and loaded, before any query."""
        if self.ready and not self.pending:
            return
        with self._loading:
            self._check()
            if not self.ready:
                self._wait_until_ready()
            for policy_id, source in list(self.pending.items()):
                self._call(lambda client: client.put_policy(policy_id, source))
                del self.pending[policy_id]

    # --- queries -----------------------------------------------------------------------------

    def query(self, rego_query: str, input_document: Any = None) -> list[dict[str, Any]]:
        """The result rows (bindings), as POST /v1/query gives them."""
        self._prepare()
        return self._call(lambda client: client.query(rego_query, input_document))

    def evaluate(self, data_path: str, input_json: str) -> Any:
        """The document at data.<path> for the input `input_json`, JSON text the caller holds (sent
        as it is), None when undefined. Safe to call from several threads at once."""
        self._prepare()
        return self._call(lambda client: client.evaluate(data_path, input_json))

    def _call(self, work):
        """Run `work(client)`; a timeout stops the server, and a server stopped for any reason
        is reported as the sandbox stopping the Rego."""
        if self.stopped:
            raise SandboxRefused(self.stopped)
        try:
            return work(self.client)
        except OpaUnreachable as exc:
            if isinstance(exc.__cause__, httpx.TimeoutException):
                self._stop(f"OPA took longer than {self.timeout:g} second{'' if self.timeout == 1 else 's'} on this Rego, the limit Gavel sets "
                           f"for evaluating authors' Rego")
            else:
                self._stop(self._why_it_died())
            raise SandboxRefused(self.stopped) from None

    def _stop(self, reason: str) -> None:
        with self._stopping:
            if not self.stopped:  # the first reason stands: the others follow from it
                self.stopped = reason
            self._kill()

    def _why_it_died(self) -> str:
        try:
            code = self.process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            return "Gavel's sandboxed OPA server stopped answering"
        if sandbox.OUT_OF_MEMORY.search(self._log()):
            return (f"OPA ran out of the memory Gavel allows for evaluating authors' Rego "
                    f"({settings.GAVEL_SANDBOX_MEMORY_MB} MB of address space)")
        if code in (-signal.SIGXCPU, -signal.SIGKILL):
            return (f"OPA was stopped after {settings.GAVEL_SANDBOX_CPU_SECONDS} seconds of CPU time, the limit "
                    f"Gavel sets for evaluating authors' Rego (or killed for memory)")
        return f"Gavel's sandboxed OPA server stopped (exit {code}) while evaluating authors' Rego"
