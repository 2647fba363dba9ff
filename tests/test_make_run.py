"""`make run` on the embedded defaults: its own Postgres, Redis and OPA, demo users and
policies, and traffic, so the console shows decisions within a minute. Its OPA ships them with a
token of its own (a file it reads, as the README recommends), so every batch is attributed to
the instance dev/local-opa. Ctrl-C stops it all."""
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import psycopg
import pytest

from tests.support import stack

ROOT = Path(__file__).resolve().parent.parent
PROFILE = stack.PROFILES["smoke"]
WEB = f"http://127.0.0.1:{PROFILE.web_port}"


def read_until(proc, pattern: str, timeout: float, seen: list[str]) -> re.Match:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line and proc.poll() is not None:
            break
        seen.append(line)
        if match := re.search(pattern, line):
            return match
    pytest.fail(f"`run_console.py` never printed {pattern!r}:\n{''.join(seen[-40:])}")


def batches_by_instance() -> dict[str | None, int]:
    """The run's decision-log batches by the instance their token belongs to (None: the
    bootstrap token), read from its own database."""
    with psycopg.connect(f"postgresql://gavel@127.0.0.1:{PROFILE.postgres_port}/gavel") as db:
        rows = db.execute(
            "SELECT e.name || '/' || i.name, count(*) FROM audit_logbatch b"
            " LEFT JOIN policies_opainstance i ON i.id = b.instance_id"
            " LEFT JOIN policies_environment e ON e.id = i.environment_id GROUP BY 1").fetchall()
    return dict(rows)


def local_opa_health() -> tuple[bool, bool | None]:
    """Whether dev/local-opa has reported its status, and whether it was healthy."""
    with psycopg.connect(f"postgresql://gavel@127.0.0.1:{PROFILE.postgres_port}/gavel") as db:
        return db.execute("SELECT last_status_at IS NOT NULL, healthy FROM policies_opainstance"
                          " WHERE name = 'local-opa'").fetchone()


def test_make_run_serves_demo_decisions_and_stops_everything_on_ctrl_c():
    # Unset the URLs `make test` exported, so the run starts its own services like a fresh machine.
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL", "OPA_URL", "DEBUG")}
    shutil.rmtree(PROFILE.home, ignore_errors=True)  # a first start, when the demo passwords are printed
    proc = subprocess.Popen(
        [sys.executable, str(ROOT / "scripts" / "run_console.py"), "--profile", "smoke"],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True,
    )
    seen: list[str] = []
    try:
        started = time.monotonic()
        password = read_until(proc, r"^\s+auditor\s+Auditor\s+(\S+)", 180, seen).group(1)
        read_until(proc, r"Gavel is up", 60, seen)
        up_at = time.monotonic()
        # Keep draining the output so no process blocks on a full pipe.
        threading.Thread(target=lambda: seen.extend(proc.stdout), daemon=True).start()

        with httpx.Client(base_url=WEB, follow_redirects=True) as web:
            login = web.get("/login/")
            token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', login.text).group(1)
            web.post("/login/", data={"username": "auditor", "password": password, "csrfmiddlewaretoken": token})
            decisions = 0
            while time.monotonic() - up_at < 60 and decisions < 10:
                time.sleep(2)
                decisions = web.get("/api/v1/decisions/", params={"policy": "agent_gateway"}).json()["count"]
            assert decisions >= 10, f"only {decisions} demo decisions after 60 s"
            page = web.get("/audit/", params={"policy": "agent_gateway"})
            assert "agent_gateway" in page.text and "v2" in page.text
            # DEBUG is off, as a newcomer should see it: the console's own pages, and its styles.
            missing = web.get("/no/such/page/")
            assert missing.status_code == 404 and 'data-testid="not-found"' in missing.text
            assert "Traceback" not in missing.text and "URLconf" not in missing.text
            assert web.get("/static/gavel/gavel.css").status_code == 200

        batches = batches_by_instance()
        assert list(batches) == ["dev/local-opa"] and batches["dev/local-opa"] >= 1, batches
        assert local_opa_health() == (True, True), "the environments page would show local-opa with no health"
        token_file = PROFILE.home / "opa" / "gavel-token"
        assert token_file.stat().st_mode & 0o777 == 0o600
        config = (PROFILE.home / "opa" / "opa-config.json").read_text()
        assert str(token_file) in config and token_file.read_text().strip() not in config
        print(f"up after {up_at - started:.0f}s; {decisions} decisions within {time.monotonic() - up_at:.0f}s")
    finally:
        os.killpg(proc.pid, signal.SIGINT)
        proc.wait(timeout=60)

    for port in (PROFILE.postgres_port, PROFILE.redis_port, PROFILE.opa_port, PROFILE.web_port):
        assert not stack.port_is_open(port), f"port {port} is still served after Ctrl-C"
    shutil.rmtree(PROFILE.home, ignore_errors=True)
