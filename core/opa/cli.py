"""The one place Gavel runs the `opa` binary on Rego source (check, parse, test, eval): every
caller gets the same binary, time limit and output handling, and the sandbox (sandbox.py)."""
from __future__ import annotations

import json
import subprocess
import tempfile
from pathlib import Path
from typing import Any

from django.conf import settings

from . import sandbox
from .sandbox import SandboxRefused

__all__ = ["SandboxRefused", "parse", "run"]


def run(*args: str, cwd: str | None = None, timeout: float = 60,
        input: str | None = None) -> subprocess.CompletedProcess:
    """`opa <args>` in the sandbox, its output captured as text. Raises SandboxRefused when the
    sandbox stopped it (a removed builtin, a time or memory limit)."""
    return sandbox.run(settings.OPA_BINARY, args, cwd=cwd, timeout=timeout, input=input)


def parse(filename: str, source: str) -> dict[str, Any]:
    """OPA's parse tree of `source` (`opa parse`), with locations (rows) on every node.
    Raises ValueError with OPA's message when it does not parse."""
    with tempfile.TemporaryDirectory(prefix="gavel-parse-") as tmp:
        path = Path(tmp) / filename
        path.write_text(source, encoding="utf-8")
        done = run("parse", "--format", "json", "--json-include", "locations,-comments", str(path))
    if done.returncode != 0:
        raise ValueError((done.stdout or done.stderr).strip()[:2000])
    return json.loads(done.stdout)
