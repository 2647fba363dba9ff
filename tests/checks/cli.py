"""What the CI-check tests share: the demo plans, the environment they are checked in, and how
the real `gavel` command is run (a subprocess, as a pipeline runs it)."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DEMO = ROOT / "console" / "demo"
GAVEL = str(Path(sys.executable).parent / "gavel")
FAILING, PASSING = str(DEMO / "ci" / "tfplan.json"), str(DEMO / "ci" / "tfplan-ok.json")
ENV = "ci-staging"
GITHUB = {"GITHUB_ACTIONS": "true", "GITHUB_SHA": "3f9a1c0ffee", "GITHUB_REF_NAME": "feature/buckets",
          "GITHUB_SERVER_URL": "https://github.example", "GITHUB_REPOSITORY": "infra/live", "GITHUB_RUN_ID": "77"}


def run_gavel(world, *args, env=None, url=None, executable=GAVEL, stdin=None):
    """`gavel ARGS...` with the CI account's token, in an environment without this machine's CI variables."""
    environ = {k: v for k, v in os.environ.items() if not k.startswith(("GITHUB_", "CI_", "GITLAB"))}
    environ.update({"GAVEL_URL": url or world["url"], "GAVEL_TOKEN": world["token"], **(env or {})})
    return subprocess.run([executable, *args], capture_output=True, text=True, env=environ, timeout=120, input=stdin)
