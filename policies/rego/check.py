"""Rego source checks done with the `opa` binary itself (`opa check`, `opa parse`)."""
from __future__ import annotations

import json
import tempfile
from dataclasses import dataclass
from pathlib import Path

from core.opa import cli as opa_cli


@dataclass(frozen=True)
class RegoError:
    file: str
    row: int
    col: int
    code: str
    message: str

    def __str__(self) -> str:
        return f"{self.file}:{self.row}:{self.col}: {self.message}"


class RegoCompileError(Exception):
    """The source does not compile; `errors` carries OPA's messages with file and line."""

    def __init__(self, errors: list[RegoError]):
        self.errors = errors
        super().__init__("; ".join(str(e) for e in errors))


def errors_from(output: str, filename: str) -> list[RegoError]:
    try:
        raw = json.loads(output).get("errors", [])
    except ValueError:
        return [RegoError(filename, 0, 0, "opa_error", output.strip()[:2000] or "opa failed without a message")]
    errors = []
    for item in raw:
        location = item.get("location") or {}
        errors.append(
            RegoError(
                file=Path(location.get("file") or filename).name,
                row=int(location.get("row") or 0),
                col=int(location.get("col") or 0),
                code=item.get("code", ""),
                message=item.get("message", ""),
            )
        )
    return errors


def check_source(filename: str, source: str) -> str:
    """Compile `source` with `opa check` (Rego v1) and return its package (`gavel.agent_gateway`).

    Raises RegoCompileError with OPA's own errors, located in `filename`, when it does not compile.
    """
    with tempfile.TemporaryDirectory(prefix="gavel-rego-") as tmp:
        path = Path(tmp) / filename
        path.write_text(source, encoding="utf-8")
        checked = opa_cli.run("check", "--format", "json", str(path))
        if checked.returncode != 0:
            raise RegoCompileError(errors_from(checked.stdout or checked.stderr, filename))
        parsed = opa_cli.run("parse", "--format", "json", str(path))
        if parsed.returncode != 0:
            raise RegoCompileError(errors_from(parsed.stdout or parsed.stderr, filename))
    terms = json.loads(parsed.stdout)["package"]["path"][1:]  # drop the leading `data`
    return ".".join(str(term["value"]) for term in terms)
