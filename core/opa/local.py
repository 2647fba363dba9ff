"""Gavel's own OPA for replay and explain: `opa eval` in the sandbox (sandbox.py), never the
fleet's OPA server, which runs with its full environment and every builtin.

It answers the few calls evaluation.loaded() and its callers make of an OpaClient (put and
delete a module, data documents, a query, an explained query, a batch evaluation), so the same
harness runs either way. Explain and CI checks use it; replay uses the sandbox server
(sandbox_server.py), and this for the Rego only `opa eval` can sandbox. Modules live in memory
until a query writes them to a private folder for one `opa eval`. It sees no data documents but
those given with put_data (CI checks give the environment's gavel_config): replay and explain
evaluate a version on its own, against the input.
"""
from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Any

from django.conf import settings

from . import cli
from .client import OpaRejected


class LocalOpa:
    def __init__(self, timeout: float | None = None):
        self.timeout = timeout or settings.GAVEL_REPLAY_TIMEOUT_SECONDS
        self.modules: dict[str, str] = {}
        self.data: dict[str, Any] = {}  # top-level data documents, e.g. {"gavel_config": {...}}

    def __enter__(self) -> LocalOpa:
        return self

    def __exit__(self, *exc) -> None:
        self.modules.clear()

    def put_policy(self, policy_id: str, source: str) -> None:
        self.modules[policy_id] = source

    def delete_policy(self, policy_id: str) -> None:
        self.modules.pop(policy_id, None)

    def load(self) -> None:
        """Nothing to do: every `opa eval` reads the modules afresh."""

    def put_data(self, path: str, document: Any) -> None:
        """A data document at data.<path> (one top-level name), as OPA's data API would hold it."""
        self.data[path.strip("/")] = document

    def _eval(self, rego_query: str, input_document: Any, *flags: str, input_text: str | None = None
              ) -> tuple[str, dict[str, str]]:
        """One `opa eval` over the modules; its output and which file holds which module. The input
        is `input_document`, or `input_text` when the caller holds it as JSON already."""
        with tempfile.TemporaryDirectory(prefix="gavel-eval-") as tmp:
            files = {}
            for number, (policy_id, source) in enumerate(self.modules.items()):
                files[f"m{number}.rego"] = policy_id
                (Path(tmp) / f"m{number}.rego").write_text(source, encoding="utf-8")
            args = ["eval", *flags, *[arg for name in files for arg in ("-d", name)]]
            if self.data:
                (Path(tmp) / "data.json").write_text(json.dumps(self.data), encoding="utf-8")
                args += ["-d", "data.json"]
            if input_text is None and input_document is not None:
                input_text = json.dumps(input_document)
            if input_text is not None:
                args.append("--stdin-input")
            done = cli.run(*args, rego_query, cwd=tmp, timeout=self.timeout, input=input_text)
        if done.returncode != 0:
            raise OpaRejected(400, refusal_body(done.stdout or done.stderr))
        return done.stdout, files

    def query(self, rego_query: str, input_document: Any = None) -> list[dict[str, Any]]:
        """The result rows (bindings), as POST /v1/query gives them."""
        out, _ = self._eval(rego_query, input_document, "--format", "json")
        return [row.get("bindings", {}) for row in json.loads(out).get("result", [])]

    def evaluate(self, data_path: str, input_json: str) -> Any:
        """The document at data.<path> for the input `input_json` (JSON text), None when undefined."""
        query = "data." + ".".join(data_path.strip("/").split("/"))
        out, _ = self._eval(query, None, "--format", "json", input_text=input_json)
        rows = json.loads(out).get("result", [])
        return rows[0]["expressions"][0]["value"] if rows else None

    def query_explained(self, rego_query: str, input_document: Any = None,
                        explain: str = "full") -> tuple[list[dict[str, Any]], list[str]]:
        """The rows and OPA's trace, one event a line, with each module named by its id as the
        REST API names it (`gavel_explain/...:12  | Enter ...`)."""
        rows = self.query(rego_query, input_document)
        out, files = self._eval(rego_query, input_document, "--format", "pretty", "--explain", explain)
        lines = []
        for line in out.splitlines():
            if line.startswith(("┌", "+-")) or line in ("undefined", "true", "false"):
                break  # the pretty result after the trace
            module, colon, rest = line.partition(":")
            lines.append(f"{files[module]}:{rest}" if colon and module in files else line)
        return rows, lines


def refusal_body(output: str) -> dict[str, Any]:
    """OPA's refusal as the REST API words it: a message and the errors."""
    try:
        errors = json.loads(output).get("errors", [])
    except ValueError:
        return {"message": output.strip()[:2000] or "opa eval failed without a message"}
    message = "; ".join(e.get("message", "") for e in errors)
    return {"code": "evaluation_error", "message": message or output.strip()[:2000], "errors": errors}
