"""Helpers for tests that wait on real services."""
import sys
import time
from pathlib import Path

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
