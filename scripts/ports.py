"""Loopback ports for the stacks' services and the servers tests start. Only the standard library:
this runs before the virtualenv exists."""
from __future__ import annotations

import itertools
import os
import random
import socket
import subprocess
import time


def wait_for_port(port: int, what: str, timeout: float = 30.0, proc: subprocess.Popen | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise SystemExit(f"{what} exited with code {proc.returncode} before it listened on {port}")
        with socket.socket() as s:
            s.settimeout(0.5)
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.2)
    raise SystemExit(f"{what} did not listen on 127.0.0.1:{port} within {timeout:.0f}s")


def port_is_open(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.3)
        return s.connect_ex(("127.0.0.1", port)) == 0


_port_turn = itertools.count(random.randrange(500))


def free_port() -> int:
    """A port nothing holds. Inside a test stack, the next free one of its block (GAVEL_PORTS: a
    port is handed out again only after the whole block), else any the kernel picks."""
    if block := os.environ.get("GAVEL_PORTS"):
        first, last = (int(bound) for bound in block.split("-"))
        for _ in range(last - first + 1):
            port = first + next(_port_turn) % (last - first + 1)
            with socket.socket() as s:
                try:
                    s.bind(("127.0.0.1", port))
                except OSError:
                    continue  # held, or closed too recently to take
                return port
        raise SystemExit(f"no free port left in {block} (GAVEL_PORTS)")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
