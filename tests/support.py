"""Helpers for tests that wait on real services, and for browser pages."""
import copy
import os
import re
import sys
import threading
import time
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "scripts"))
import stack  # noqa: E402,F401  (scripts/stack.py: starts OPA the same way `make run` does)


def wait_until(predicate, timeout: float = 20.0, interval: float = 0.2, message: str = "condition"):
    """Poll `predicate` until it returns something truthy; fail the test after `timeout`."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    pytest.fail(f"timed out after {timeout}s waiting for {message}")


def decisions_served(opa_url: str) -> int:
    """How many decisions (and queries) OPA has answered, from its Prometheus metrics."""
    metrics = httpx.get(f"{opa_url}/metrics", timeout=5).text
    pattern = r'http_request_duration_seconds_count\{code="200",handler="v1/(?:data|query)",method="post"\} (\S+)'
    return int(sum(float(n) for n in re.findall(pattern, metrics)))


def settle_decision_logs(opa_url: str, served_before: int) -> None:
    """OPA ships a decision's log up to two seconds later, possibly into the next test.
    Wait for it, then delete what arrived, from a thread of its own: its connection commits,
    whereas the test's own transaction would only roll the deletion back."""
    if decisions_served(opa_url) == served_before:
        return
    time.sleep(2.5)

    def purge():
        from django.db import connection

        from approvals.models import HeldAction
        from core.models import Decision, LogBatch

        HeldAction.objects.all().delete()
        Decision.objects.all().delete()
        LogBatch.objects.all().delete()
        connection.close()

    purger = threading.Thread(target=purge)
    purger.start()
    purger.join()


@contextmanager
def browser_page(browser, width: int, height: int):
    """A fresh page (its own cookies) in a window of this size."""
    context = browser.new_context(viewport={"width": width, "height": height})
    page = context.new_page()
    page.set_default_timeout(15000)
    yield page
    context.close()


def shots(tmp_path) -> Path:
    """Where a browser test's screenshots go: GAVEL_SHOTS_DIR when set (to look at them), else its tmp dir."""
    folder = Path(os.environ.get("GAVEL_SHOTS_DIR") or tmp_path)
    folder.mkdir(parents=True, exist_ok=True)
    return folder


@contextmanager
def read_replica(profile):
    """A streaming replica of the profile's Postgres (scripts/stack.py), configured as the `replica`
    database on the test database for as long as the block runs, then stopped."""
    from django.conf import settings  # noqa: PLC0415
    from django.db import connections  # noqa: PLC0415

    from core import replica  # noqa: PLC0415

    stack.start_replica(profile, fresh=True)
    primary = connections["default"].settings_dict
    settings.DATABASES["replica"] = connections.settings["replica"] = {
        **copy.deepcopy(primary), "PORT": str(stack.replica_port(profile)),
        "OPTIONS": {**primary.get("OPTIONS", {}), "connect_timeout": 2},
        "TEST": {**primary.get("TEST", {}), "MIRROR": "default"},  # not flushed after each test: it is read-only
    }
    replica.forget()
    try:
        yield profile
    finally:
        connections["replica"].close()
        del connections["replica"]
        connections.settings.pop("replica", None)
        settings.DATABASES.pop("replica", None)
        replica.forget()
        stack.stop_replica(profile)
