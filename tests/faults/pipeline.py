"""The ingest pipeline the fault tests break, in processes that can be killed: OPA shipping its
decision logs to a Gavel web process (gunicorn), a Celery worker (prefork, with beat), and the
profile's real Postgres and Redis, which the tests may restart. Traffic asks OPA for decisions and keeps every
decision_id OPA answered with, so a test can check that Gavel holds exactly those."""
from __future__ import annotations

import logging
import os
import signal
import subprocess
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx
from django.conf import settings
from django.db import connection

logging.getLogger("httpx").setLevel(logging.WARNING)  # one line per decision otherwise

from core.models import Decision, LogBatch
from core.opa.client import opa_client
from tests.support import stack, wait_until

ROOT = Path(__file__).resolve().parents[2]
PYTHON = ROOT / ".venv" / "bin" / "python"
POLICY_PATH = "faults/ingest/decision"
POLICY = """package faults.ingest

decision := {"allow": input.n % 7 != 0, "reasons": [r | input.n % 7 == 0; r := "every seventh is denied"]}
"""
# The sweep that re-sends lost hand-offs runs every 2 s and trusts a hand-off for 3 s, so a
# batch staged while Redis was down reaches the worker within seconds, not minutes.
FAST_SWEEP = {"GAVEL_INGEST_REQUEUE_EVERY_SECONDS": "2", "GAVEL_INGEST_REQUEUE_AFTER_SECONDS": "3"}


def tail(path: Path, lines: int = 40) -> str:
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:]) if path.exists() else ""


def stack_profile() -> stack.Profile | None:
    """The scripts/stack.py profile whose Postgres and Redis this run uses, if it started them."""
    home = os.environ.get("GAVEL_STACK_HOME")
    for profile in stack.PROFILES.values():
        if home and Path(home) == profile.home:
            port = int(settings.DATABASES["default"]["PORT"] or 0)
            if port == profile.postgres_port and f":{profile.redis_port}/" in settings.REDIS_URL:
                return profile
    return None


@dataclass
class IngestStack:
    """OPA -> gunicorn -> Postgres -> Redis -> Celery worker (and beat), each a process of its own."""

    home: Path
    env: dict[str, str]
    worker_concurrency: int = 1
    web_port: int = field(default_factory=stack.free_port)
    opa_port: int = field(default_factory=stack.free_port)
    procs: dict[str, subprocess.Popen] = field(default_factory=dict)

    @property
    def web_url(self) -> str:
        return f"http://127.0.0.1:{self.web_port}"

    @property
    def opa_url(self) -> str:
        return f"http://127.0.0.1:{self.opa_port}"

    def _spawn(self, name: str, argv: list[str]) -> subprocess.Popen:
        log = open(self.home / f"{name}.log", "ab")
        proc = subprocess.Popen(argv, env=self.env, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT,
                                start_new_session=True)
        self.procs[name] = proc
        return proc

    def start_web(self) -> None:
        proc = self._spawn("web", [str(PYTHON), "-m", "gunicorn", "console.wsgi", "--bind",
                                   f"127.0.0.1:{self.web_port}", "--workers", "2", "--timeout", "60",
                                   "--access-logfile", "-", "--access-logformat", '%(s)s %(r)s',
                                   "--no-control-socket"])
        stack.wait_for_port(self.web_port, "gunicorn", proc=proc)

    def start_worker(self) -> None:
        self._spawn("worker", [str(PYTHON), "-m", "celery", "-A", "console", "worker",
                               "--pool", "prefork", "--concurrency", str(self.worker_concurrency),
                               "--loglevel", "INFO",
                               "--without-mingle", "--without-gossip", "-n", "faults@%h"])
        wait_until(lambda: "ready." in (self.home / "worker.log").read_text(errors="replace"), timeout=60,
                   message=f"the Celery worker to start:\n{tail(self.home / 'worker.log')}")

    def start_beat(self) -> None:
        """Beat apart from the worker (as in production), so the worker's only child runs tasks."""
        self._spawn("beat", [str(PYTHON), "-m", "celery", "-A", "console", "beat", "--loglevel", "INFO"])

    def start_opa(self) -> None:
        self.procs["opa"] = stack.start_opa(self.home / "opa", self.opa_port, f"{self.web_url}/api/v1/opa",
                                            settings.GAVEL_OPA_TOKEN, {"environment": "test", "instance": "faults"})
        with opa_client(self.opa_url) as client:
            client.put_policy("faults/ingest", POLICY)

    def stop(self, name: str, sig: int = signal.SIGTERM) -> None:
        """SIGTERM: a graceful stop (OPA flushes its buffer); SIGKILL: a crash."""
        proc = self.procs.pop(name)
        if proc.poll() is None:
            os.killpg(proc.pid, sig)
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()

    def worker_child(self) -> int:
        """The pid of the prefork pool's one child, the process that runs tasks."""
        parent = self.procs["worker"].pid
        children = Path(f"/proc/{parent}/task/{parent}/children").read_text().split()
        assert len(children) == 1, f"expected one pool process under the worker, found {children}"
        return int(children[0])

    def answers(self) -> dict[int, int]:
        """How many uploads the web process answered with each status (its access log)."""
        counts: dict[int, int] = {}
        for line in self.log("web").splitlines():
            status, _, request = line.partition(" ")
            if status.isdigit() and "/api/v1/opa/logs" in request:
                counts[int(status)] = counts.get(int(status), 0) + 1
        return counts

    def log(self, name: str) -> str:
        return (self.home / f"{name}.log").read_text(errors="replace")

    def logs(self) -> str:
        return "\n".join(f"--- {name} ---\n{tail(self.home / f'{name}.log')}" for name in ("web", "worker", "beat"))


class Traffic:
    """Asks OPA for decisions from a thread, at a steady rate, and keeps every decision_id OPA
    answered with: those are the decisions OPA made and must report. A refused or failed request
    (OPA down) made no decision."""

    def __init__(self, opa_url: str, rate: float):
        self.opa_url, self.interval = opa_url, 1.0 / rate
        self.ids: list[str] = []
        self.failed = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        n = 0
        with httpx.Client(base_url=self.opa_url, timeout=10) as client:
            next_at = time.monotonic()
            while not self._stop.is_set():
                n += 1
                try:
                    answer = client.post(f"/v1/data/{POLICY_PATH}",
                                         json={"input": {"n": n, "user": f"user-{n % 50}", "tool": "search"}})
                    answer.raise_for_status()
                    self.ids.append(answer.json()["decision_id"])
                except httpx.HTTPError:
                    self.failed += 1
                next_at = max(next_at + self.interval, time.monotonic() - 1)
                time.sleep(max(0.0, next_at - time.monotonic()))

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join(timeout=30)

    def wait_for(self, count: int, timeout: float = 30) -> None:
        wait_until(lambda: len(self.ids) >= count, timeout=timeout, message=f"{count} decisions from OPA")


def assert_stored_exactly_once(ids: list[str], ingest: IngestStack, timeout: float = 90) -> None:
    """Every decision OPA answered with is stored, once, and nothing else is; every staged
    batch is stored and their stored counts add up to the decisions (none counted twice)."""
    assert ids, "the traffic made no decision"
    assert len(set(ids)) == len(ids), "OPA returned a decision_id twice"

    def settled():
        stored = Decision.objects.filter(path=POLICY_PATH).count()
        return stored >= len(ids) and not LogBatch.objects.filter(status=LogBatch.Status.QUEUED).exists()

    try:
        wait_until(settled, timeout=timeout, message="every decision to be stored")
    except BaseException:
        stored = Decision.objects.filter(path=POLICY_PATH).count()
        print(f"stored {stored} of {len(ids)}; queued batches: "
              f"{LogBatch.objects.filter(status=LogBatch.Status.QUEUED).count()}\n{ingest.logs()}")
        raise
    time.sleep(2.5)  # anything still in flight would land within OPA's next upload
    stored_ids = list(Decision.objects.filter(path=POLICY_PATH).values_list("decision_id", flat=True))
    assert len(stored_ids) == len(ids)
    assert set(stored_ids) == set(ids)
    # Nothing else from this OPA (its `instance` label); the test session's own OPA may still be
    # shipping an earlier test's decisions, so the whole table is not this test's to count.
    assert Decision.objects.filter(instance="faults").count() == len(ids)
    assert not LogBatch.objects.exclude(status=LogBatch.Status.STORED).exists()
    with connection.cursor() as cursor:  # one statement, one snapshot: no batch lands in between
        cursor.execute("SELECT (SELECT coalesce(sum(stored_count), 0) FROM audit_logbatch), "
                       "(SELECT count(*) FROM audit_decision)")
        counted, rows = cursor.fetchone()
    assert counted == rows, "a batch's stored count disagrees with the rows it stored"
