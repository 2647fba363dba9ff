#!/usr/bin/env python3
"""`make run`: the console with demo data on the dev profile's own Postgres, Redis and OPA
(scripts/stack.py starts them), a Celery worker with beat, the web server and demo traffic.
Ctrl-C stops everything it started.

    python scripts/run_console.py [--profile dev]
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

from stack import (
    PROFILES,
    ROOT,
    VENV_PYTHON,
    Profile,
    port_is_open,
    say,
    stack_up,
    start_opa,
    stop_on_signals,
    stop_process,
    wait_for_port,
)


def web_env(stack_env: dict[str, str]) -> dict[str, str]:
    """DEBUG stays off, so a newcomer sees the console's own 404 and 500 pages, as production would.
    The demo serves plain HTTP on loopback: cookies may not be marked Secure, nor HSTS sent."""
    return {**os.environ, "SESSION_COOKIE_SECURE": "0", "CSRF_COOKIE_SECURE": "0", "SECURE_HSTS_SECONDS": "0",
            **stack_env, "DEBUG": os.environ.get("DEBUG", "0")}


def manage(env: dict[str, str], *args: str, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run([str(VENV_PYTHON), str(ROOT / "manage.py"), *args], env=env, check=True, **kwargs)


# The OPA `make run` starts: an instance of the environment Gavel serves, with its own token.
DEV_INSTANCE = "local-opa"


def issue_dev_opa_token(env: dict[str, str], profile: Profile, environment: str) -> Path:
    """Register the local OPA and issue it a fresh token into a file (0600) OPA reads on every
    request, as the README recommends, so the demo's batches are attributed to their instance. The
    previous token ends when the new one is first used (fleet/credentials.py): none pile up."""
    token_file = profile.home / "opa" / "gavel-token"
    manage(env, "opa_environment", environment, "--add-instance", DEV_INSTANCE, env["OPA_URL"],
           "--instance-token", DEV_INSTANCE, "--token-file", str(token_file), stdout=subprocess.DEVNULL)
    return token_file


def cmd_run(profile: Profile) -> int:
    """Everything `make run` shows: services, migrations, demo data, worker, traffic, web."""
    env, started = stack_up(profile)
    env = web_env(env)
    web_url = f"http://127.0.0.1:{profile.web_port}"
    processes: list[tuple[subprocess.Popen, str]] = []
    try:
        manage(env, "migrate", "--noinput", stdout=subprocess.DEVNULL)
        manage(env, "collectstatic", "--noinput", stdout=subprocess.DEVNULL)  # served by WhiteNoise
        if os.environ.get("OPA_URL"):
            env["OPA_URL"] = os.environ["OPA_URL"]
            say(f"using OPA at {env['OPA_URL']}; configure it to ship decision logs to {web_url}/api/v1/opa/logs")
        else:
            env["OPA_URL"] = f"http://127.0.0.1:{profile.opa_port}"
            if port_is_open(profile.opa_port):
                raise SystemExit(f"port {profile.opa_port} is taken; stop what runs there or set OPA_URL")
            environment = env.get("GAVEL_ENVIRONMENT") or "dev"
            token_file = issue_dev_opa_token(env, profile, environment)
            # Status reports too, so the environments page shows the instance's health.
            opa = start_opa(profile.home / "opa", profile.opa_port, f"{web_url}/api/v1/opa", "",
                            {"environment": environment, "instance": DEV_INSTANCE},
                            extra_config={"status": {"service": "gavel"}}, token_path=token_file)
            processes.append((opa, "OPA"))
            say(f"OPA up on {env['OPA_URL']}, shipping decision logs to {web_url}/api/v1/opa/logs "
                f"as {environment}/{DEV_INSTANCE}, with its own token in {token_file.relative_to(ROOT)}")
        worker = subprocess.Popen(
            [str(VENV_PYTHON), "-m", "celery", "-A", "console", "worker", "--beat", "--loglevel", "WARNING",
             "--concurrency", "2"],
            env=env, cwd=ROOT, start_new_session=True,
        )
        processes.append((worker, "Celery worker"))
        web = subprocess.Popen(
            [str(VENV_PYTHON), str(ROOT / "manage.py"), "runserver", f"127.0.0.1:{profile.web_port}", "--noreload"],
            env=env, cwd=ROOT, start_new_session=True,
        )
        processes.append((web, "web"))
        wait_for_port(profile.web_port, "web", proc=web)
        manage(env, "seed_demo", "--publish")
        traffic = subprocess.Popen(
            [str(VENV_PYTHON), str(ROOT / "manage.py"), "demo_traffic", "--rate", "3", "--gavel-url", web_url],
            env=env, cwd=ROOT, start_new_session=True,
        )
        processes.append((traffic, "demo traffic"))
        say(f"Gavel is up: {web_url}  (Ctrl-C stops everything)")
        while all(p.poll() is None for p, _ in processes):
            time.sleep(1)
        for p, what in processes:
            if p.poll() is not None:
                say(f"{what} exited with code {p.returncode}; stopping")
        return 1
    except KeyboardInterrupt:
        return 0
    finally:
        for proc, what in reversed(processes):
            stop_process(proc, what)
        for stop in reversed(started):
            stop()


def main() -> int:
    stop_on_signals()
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--profile", choices=PROFILES, default="dev")
    return cmd_run(PROFILES[parser.parse_args().profile])


if __name__ == "__main__":
    sys.exit(main())
