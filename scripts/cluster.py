#!/usr/bin/env python3
"""Gavel as several machines would run it, on one: two web processes (gunicorn) behind haproxy,
two Celery workers, one beat (a second one started by mistake sends nothing: console/celery.py),
Redis, and a Postgres primary with a streaming replica that searches, charts and exports read
(core/replica.py). Ctrl-C stops everything it started.

    python scripts/cluster.py [--profile dev] [--port 8000]      # or: make cluster

The fault drills (tests/cluster/) start the same processes through Cluster, on the test database.
Only the standard library is used, like scripts/stack.py.
"""
from __future__ import annotations

import argparse
import os
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from stack import (
    PROFILES,
    ROOT,
    VENV_PYTHON,
    Profile,
    free_port,
    say,
    stack_up,
    start_replica,
    stop_on_signals,
    stop_replica,
    wait_for_port,
)

HAPROXY_CONFIG = """global
    maxconn 2000
defaults
    mode http
    timeout connect 2s
    timeout client 60s
    timeout server 60s
    # A web process that refuses the connection or dies before answering: the request goes to the
    # other one (OPA's decision-log uploads are safe to send twice: each decision is stored once).
    retries 3
    option redispatch 1
    retry-on conn-failure empty-response response-timeout
    option forwardfor
frontend gavel
    bind 127.0.0.1:{port}
    default_backend web
backend web
    balance roundrobin
{servers}
"""


def haproxy_binary() -> str:
    found = shutil.which("haproxy") or ("/usr/sbin/haproxy" if Path("/usr/sbin/haproxy").exists() else None)
    if not found:
        raise SystemExit("haproxy is not installed: `apt-get install -y haproxy`")
    return found


@dataclass
class Cluster:
    """The cluster's processes, each in a session of its own so it can be killed alone."""

    home: Path
    env: dict[str, str]
    port: int = field(default_factory=free_port)
    web_ports: dict[str, int] = field(default_factory=lambda: {"web1": free_port(), "web2": free_port()})
    procs: dict[str, subprocess.Popen] = field(default_factory=dict)
    # Logs are appended to: where each process's own part begins, and where the current drill's does.
    spawned_at: dict[str, int] = field(default_factory=dict)
    log_starts: dict[str, int] = field(default_factory=dict)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def spawn(self, name: str, argv: list[str]) -> subprocess.Popen:
        self.home.mkdir(parents=True, exist_ok=True)
        with open(self.home / f"{name}.log", "ab") as log:
            self.spawned_at[name] = self.log_starts[name] = log.tell()
            proc = subprocess.Popen(argv, env=self.env, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT,
                                    start_new_session=True)
        self.procs[name] = proc
        return proc

    def log(self, name: str, since_spawn: bool = False) -> str:
        """What the process of that name has written since mark_logs() (or since it started)."""
        path = self.home / f"{name}.log"
        if not path.exists():
            return ""
        with open(path, "rb") as log:
            log.seek((self.spawned_at if since_spawn else self.log_starts).get(name, 0))
            return log.read().decode(errors="replace")

    def mark_logs(self) -> None:
        """From now on, log() reads only what comes after this moment."""
        for name in self.procs:
            path = self.home / f"{name}.log"
            self.log_starts[name] = path.stat().st_size if path.exists() else 0

    def restore(self) -> None:
        """Every process of the cluster up again, as up() started it, and no other beat."""
        for name in [n for n in self.procs if n.startswith("beat") and n != "beat"]:
            self.stop(name)
        for name in self.web_ports:
            if self.lost(name):
                self.start_web(name)
        for name in ("worker1", "worker2"):
            if self.lost(name):
                self.start_worker(name)
        if self.lost("beat"):
            self.start_beat()

    def lost(self, name: str) -> bool:
        return name not in self.procs or self.procs[name].poll() is not None

    def logs(self, lines: int = 40) -> str:
        return "\n".join(f"--- {name} ---\n" + "\n".join(self.log(name).splitlines()[-lines:])
                         for name in sorted(self.procs))

    def start_web(self, name: str) -> None:
        port = self.web_ports[name]
        proc = self.spawn(name, [str(VENV_PYTHON), "-m", "gunicorn", "console.wsgi", "--bind", f"127.0.0.1:{port}",
                                 "--workers", "2", "--timeout", "60", "--forwarded-allow-ips", "127.0.0.1",
                                 "--access-logfile", "-", "--access-logformat", "%(s)s %(r)s", "--no-control-socket"])
        wait_for_port(port, f"gunicorn {name}", timeout=60, proc=proc)

    def start_proxy(self) -> None:
        # A TCP check every half second: a killed web process is out of the rotation within a second.
        servers = "\n".join(f"    server {name} 127.0.0.1:{port} check inter 500ms fall 1 rise 2"
                            for name, port in self.web_ports.items())
        config = self.home / "haproxy.cfg"
        config.write_text(HAPROXY_CONFIG.format(port=self.port, servers=servers))
        proc = self.spawn("haproxy", [haproxy_binary(), "-db", "-f", str(config)])
        wait_for_port(self.port, "haproxy", proc=proc)

    def start_worker(self, name: str) -> None:
        self.spawn(name, [str(VENV_PYTHON), "-m", "celery", "-A", "console", "worker", "--pool", "prefork",
                          "--concurrency", "1", "--loglevel", "INFO", "--without-mingle", "--without-gossip",
                          "-n", f"{name}@%h"])
        deadline = time.monotonic() + 60
        while "ready." not in self.log(name):
            if time.monotonic() > deadline or self.procs[name].poll() is not None:
                raise SystemExit(f"Celery {name} did not start:\n{self.log(name)[-2000:]}")
            time.sleep(0.2)

    def start_beat(self, name: str = "beat") -> None:
        self.spawn(name, [str(VENV_PYTHON), "-m", "celery", "-A", "console", "beat", "--loglevel", "INFO"])

    def up(self) -> None:
        for name in self.web_ports:
            self.start_web(name)
        self.start_proxy()
        for name in ("worker1", "worker2"):
            self.start_worker(name)
        self.start_beat()

    def stop(self, name: str, sig: int = signal.SIGTERM) -> None:
        proc = self.procs.pop(name, None)
        if proc is None or proc.poll() is not None:
            return
        try:
            os.killpg(proc.pid, sig)
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        except ProcessLookupError:
            pass

    def down(self) -> None:
        for name in reversed(list(self.procs)):
            self.stop(name)


def cmd_cluster(profile: Profile, port: int) -> int:
    env, started = stack_up(profile)
    cluster = None
    try:
        env["GAVEL_REPLICA_DATABASE_URL"] = start_replica(profile, fresh=True)
        started.append(lambda: stop_replica(profile))
        env = {**os.environ, "SESSION_COOKIE_SECURE": "0", "CSRF_COOKIE_SECURE": "0", "SECURE_HSTS_SECONDS": "0",
               **env, "DEBUG": os.environ.get("DEBUG", "0"), "PYTHONPATH": str(ROOT)}
        manage = [str(VENV_PYTHON), str(ROOT / "manage.py")]
        subprocess.run([*manage, "migrate", "--noinput"], env=env, check=True, stdout=subprocess.DEVNULL)
        subprocess.run([*manage, "collectstatic", "--noinput"], env=env, check=True, stdout=subprocess.DEVNULL)
        cluster = Cluster(home=profile.home / "cluster", env=env, port=port)
        cluster.up()
        say(f"Gavel's cluster is up: {cluster.url} (haproxy -> web1 :{cluster.web_ports['web1']}, "
            f"web2 :{cluster.web_ports['web2']}); worker1, worker2, beat; Postgres {env['DATABASE_URL']} "
            f"with its replica {env['GAVEL_REPLICA_DATABASE_URL']}; logs in {cluster.home}. Ctrl-C stops it all.")
        while all(proc.poll() is None for proc in cluster.procs.values()):
            time.sleep(1)
        say(", ".join(f"{name} exited with code {proc.returncode}" for name, proc in cluster.procs.items()
                      if proc.poll() is not None) + "; stopping")
        return 1
    except KeyboardInterrupt:
        return 0
    finally:
        if cluster is not None:
            cluster.down()
        for stop in reversed(started):
            stop()


def main() -> int:
    stop_on_signals()
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--profile", choices=PROFILES, default="dev")
    parser.add_argument("--port", type=int, default=None, help="haproxy's port (default: the profile's web port)")
    args = parser.parse_args()
    profile = PROFILES[args.profile]
    return cmd_cluster(profile, args.port or profile.web_port or free_port())


if __name__ == "__main__":
    sys.exit(main())
