"""The sandbox every `opa` process Gavel starts on authors' Rego runs in.

Authors' Rego is code: run with the web process's environment and every builtin, a test can
read Gavel's secrets (`opa.runtime().env`), one bit per test, and `http.send` can reach
whatever the Gavel host can. So every run gets:

- an empty environment (nothing to read, even through a builtin we did not think of);
- for the commands that evaluate (`eval`, `test`, ...), a capabilities file: OPA's own
  (`opa capabilities --current`) without the builtins that reach outside, and with
  `allow_net: []`, which also stops JSON-schema builtins fetching remote `$ref`s;
- an address-space and a CPU-time limit (setrlimit in the child), and the caller's wall-clock
  timeout.

Only Gavel's own evaluation is sandboxed: `opa check` compiles with every builtin, so a version
that calls `http.send` is saved and published unchanged, and runs normally in the fleet.

Replay evaluates through an `opa run --server` (sandbox_server.py) started here the same way. OPA's
server takes no capabilities file, so what it may load is checked first with `opa check` against
the server's capabilities: these, and without the JSON-schema builtins, whose remote `$ref`s only
`allow_net` (enforced by `opa eval`, not by a server) would stop.
"""
from __future__ import annotations

import atexit
import json
import os
import re
import resource
import shutil
import signal
import subprocess
import tempfile
from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path

from django.conf import settings

from .client import OpaError

# Builtins that reach outside OPA: the network, DNS, the process's environment and config.
DENIED = frozenset({"http.send", "net.lookup_ip_addr", "opa.runtime"})
# Nondeterministic builtins known to stay inside OPA (clock, randomness, JWT signing; JSON
# schemas' remote references are refused by allow_net). Any other nondeterministic builtin,
# e.g. one a future OPA adds, is left out until someone checks it: those are the ones that
# talk to the outside world.
OFFLINE = frozenset({"time.now_ns", "rand.intn", "uuid.rfc4122", "io.jwt.decode_verify", "io.jwt.encode_sign",
                     "io.jwt.encode_sign_raw", "json.match_schema", "json.verify_schema"})
# Kept for `opa eval`, where `allow_net: []` stops their remote `$ref`s at evaluation time; refused
# for the sandbox server, which enforces no capabilities once a module is loaded.
SERVER_DENIED = frozenset({"json.match_schema", "json.verify_schema"})
# `opa` subcommands that evaluate Rego, and so run with the capabilities file.
EVALUATING = frozenset({"eval", "test", "bench", "exec"})

UNDEFINED_FUNCTION = re.compile(r"undefined function ([\w.]+)")
OUT_OF_MEMORY = re.compile(r"^fatal error: (?:out of memory|runtime: out of memory|runtime: cannot allocate memory)"
                           r"|^runtime: out of memory", re.M)


class SandboxRefused(OpaError, ValueError):
    """OPA, as Gavel runs it on authors' Rego, could not finish: a builtin the sandbox removes,
    or a time or memory limit. The message says which, in words."""


def sandbox_capabilities(current: dict) -> dict:
    """OPA's capabilities without the builtins that reach outside, and with no network."""
    kept = [b for b in current.get("builtins", [])
            if b["name"] not in DENIED and (not b.get("nondeterministic") or b["name"] in OFFLINE)]
    return {**current, "builtins": kept, "allow_net": []}


def server_capabilities(current: dict) -> dict:
    """What the sandbox server may load: the sandbox's capabilities without SERVER_DENIED."""
    sandboxed = sandbox_capabilities(current)
    return {**sandboxed, "builtins": [b for b in sandboxed["builtins"] if b["name"] not in SERVER_DENIED]}


def removed_builtins(current: dict) -> set[str]:
    kept = {b["name"] for b in sandbox_capabilities(current)["builtins"]}
    return {b["name"] for b in current.get("builtins", [])} - kept


def _limit_resources(memory: int, cpu_seconds: int):
    def limit() -> None:  # runs in the child between fork and exec: no imports, no locks
        resource.setrlimit(resource.RLIMIT_AS, (memory, memory))
        resource.setrlimit(resource.RLIMIT_CPU, (cpu_seconds, cpu_seconds + 1))  # SIGXCPU, then SIGKILL
    return limit


def _limits():
    return _limit_resources(settings.GAVEL_SANDBOX_MEMORY_MB * 1024 * 1024, settings.GAVEL_SANDBOX_CPU_SECONDS)


def _spawn(argv: list[str], *, cwd: str | None, timeout: float, input: str | None) -> subprocess.CompletedProcess:
    try:
        return subprocess.run(argv, capture_output=True, text=True, timeout=timeout, cwd=cwd, input=input,
                              env={}, preexec_fn=_limits())
    except subprocess.TimeoutExpired:
        raise SandboxRefused(f"OPA took longer than {timeout:g} second{'' if timeout == 1 else 's'} on this Rego, the limit Gavel sets "
                             f"for evaluating authors' Rego") from None


def start(argv: list[str], *, cwd: str | None = None, output=subprocess.DEVNULL) -> subprocess.Popen:
    """A long-running sandboxed process (the sandbox server): no environment, the same limits as
    every run, its own session so that it can be killed whole. `output` takes stdout and stderr."""
    return subprocess.Popen(argv, cwd=cwd, env={}, preexec_fn=_limits(), stdin=subprocess.DEVNULL, stdout=output,
                            stderr=subprocess.STDOUT, start_new_session=True)


@lru_cache(maxsize=4)
def _capabilities(binary: str) -> tuple[str, str, frozenset]:
    done = _spawn([binary, "capabilities", "--current"], cwd=None, timeout=60, input=None)
    if done.returncode != 0:
        raise SandboxRefused(f"`opa capabilities --current` failed: {(done.stderr or done.stdout).strip()[:500]}")
    current = json.loads(done.stdout)
    folder = tempfile.mkdtemp(prefix="gavel-opa-sandbox-")  # 0700, this process's own
    atexit.register(shutil.rmtree, folder, ignore_errors=True)
    path, server_path = Path(folder) / "capabilities.json", Path(folder) / "server-capabilities.json"
    path.write_text(json.dumps(sandbox_capabilities(current)), encoding="utf-8")
    server_path.write_text(json.dumps(server_capabilities(current)), encoding="utf-8")
    return str(path), str(server_path), frozenset(removed_builtins(current))


def capabilities_file(binary: str | None = None, *, server: bool = False) -> str:
    """The sandbox capabilities for `binary` (default OPA_BINARY), made once per process; with
    `server`, those the sandbox server's modules are checked against."""
    binary = binary or settings.OPA_BINARY
    found = _capabilities(binary)
    if not all(os.path.exists(path) for path in found[:2]):  # a temp cleaner took them: make them again
        _capabilities.cache_clear()
        found = _capabilities(binary)
    return found[1] if server else found[0]


def refused_builtins(output: str, errors: str = "", binary: str | None = None, *, server: bool = False) -> set[str]:
    """The builtins the sandbox (with `server`, the sandbox server) removes that OPA's answer says
    the Rego calls."""
    undefined = set(UNDEFINED_FUNCTION.findall(f"{output}\n{errors}"))
    if not undefined:
        return set()
    return undefined & (_capabilities(binary or settings.OPA_BINARY)[2] | (SERVER_DENIED if server else set()))


def explain_refusal(output: str, errors: str = "", binary: str | None = None, *, server: bool = False) -> str | None:
    """Why OPA refused authors' Rego because of the sandbox, in words; None for any other error.
    `errors` is OPA's stderr, where the Go runtime reports running out of memory."""
    names = sorted(refused_builtins(output, errors, binary, server=server))
    if names:
        listed = ", ".join(f"`{name}`" for name in names)
        return (f"{listed} cannot be used when Gavel evaluates authors' Rego (tests, worked examples, replay, "
                f"explain): Gavel runs OPA without network access, environment or runtime information. "
                f"The published policy can still call it in your own OPA servers.")
    if OUT_OF_MEMORY.search(errors):
        return (f"OPA ran out of the memory Gavel allows for evaluating authors' Rego "
                f"({settings.GAVEL_SANDBOX_MEMORY_MB} MB of address space)")
    return None


def run(binary: str, args: Sequence[str], *, cwd: str | None = None, timeout: float = 60,
        input: str | None = None) -> subprocess.CompletedProcess:
    """`opa <args>` in the sandbox. Raises SandboxRefused when a limit or a removed builtin stopped
    it; any other failure is returned as OPA left it, for the caller to read."""
    args = list(args)
    if args and args[0] in EVALUATING:
        args[1:1] = ["--capabilities", capabilities_file(binary)]
    done = _spawn([binary, *args], cwd=cwd, timeout=timeout, input=input)
    if done.returncode in (-signal.SIGXCPU, -signal.SIGKILL):  # the kernel's answers to RLIMIT_CPU
        raise SandboxRefused(f"OPA was stopped after {settings.GAVEL_SANDBOX_CPU_SECONDS} seconds of CPU time, "
                             f"the limit Gavel sets for evaluating authors' Rego (or killed for memory)")
    if done.returncode < 0:
        raise SandboxRefused(f"OPA was stopped by signal {-done.returncode} while evaluating authors' Rego")
    if done.returncode != 0:
        why = explain_refusal(done.stdout, done.stderr, binary)
        if why:
            raise SandboxRefused(why)
    return done
