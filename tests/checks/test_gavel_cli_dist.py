"""`gavel-cli` is installable on its own in a CI image: gavel_cli/pyproject.toml built into a bare
virtualenv (no Django, nothing of Gavel) gives a `gavel` that checks a plan against the running
test Gavel. Its pins are requirements.lock's."""
from __future__ import annotations

import re
import shutil
import subprocess
import sys
import tomllib

import pytest

from tests.checks.cli import ENV, FAILING, ROOT, run_gavel

pytestmark = pytest.mark.django_db


def test_gavel_cli_pins_what_requirements_lock_pins():
    project = tomllib.loads((ROOT / "gavel_cli" / "pyproject.toml").read_text())["project"]
    lock = dict(line.strip().split("==") for line in (ROOT / "requirements.lock").read_text().splitlines()
                if "==" in line)
    pins = dict(re.fullmatch(r"([A-Za-z0-9_.-]+)==(\S+)", dep).groups() for dep in project["dependencies"])
    assert sorted(pins) == ["PyYAML", "httpx"]
    assert pins == {name: lock[name] for name in pins}
    assert project["scripts"] == {"gavel": "gavel_cli.main:main"}


def _run(*args, timeout=300):
    done = subprocess.run([str(a) for a in args], capture_output=True, text=True, timeout=timeout)
    assert done.returncode == 0, done.stdout + done.stderr
    return done


def test_gavel_cli_installs_into_a_virtualenv_without_django_and_checks_a_plan(world, tmp_path):
    # A copy, so the build leaves nothing (build/, *.egg-info) in the checkout.
    source = tmp_path / "gavel_cli"
    shutil.copytree(ROOT / "gavel_cli", source, ignore=shutil.ignore_patterns("__pycache__", "build", "*.egg-info"))
    venv = tmp_path / "ci-image"
    _run(sys.executable, "-m", "venv", "--without-pip", venv)  # this process's pip installs into it: faster
    python = venv / "bin" / "python"
    pip = (sys.executable, "-m", "pip", "--python", python)
    # Built as a CI image builds it (setuptools in an isolated build environment), with httpx,
    # PyYAML and what they need as requirements.lock pins them, from the configured index.
    _run(*pip, "install", "--quiet", "-c", ROOT / "requirements.lock", source)
    installed = _run(*pip, "list", "--format=freeze").stdout.lower()
    assert "gavel-cli==0.1.0" in installed and "django" not in installed, installed
    no_django = subprocess.run([python, "-c", "import django"], capture_output=True, text=True)
    assert no_django.returncode == 1 and "No module named 'django'" in no_django.stderr

    done = run_gavel(world, "check", FAILING, "--env", ENV, executable=str(venv / "bin" / "gavel"))
    assert done.returncode == 1, done.stdout + done.stderr
    assert (f"FAIL - {FAILING} - gavel.provisioning - S3 bucket my-bucket must have server-side encryption enabled"
            in done.stdout.splitlines())
