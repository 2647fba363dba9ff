"""Go tools Gavel builds itself (OPA, conftest, vegeta): found at .gavel/bin or on PATH, else built
once there with `go install module@version`. The versions are pinned in scripts/stack.py.
Only the standard library: this runs before the virtualenv exists."""
from __future__ import annotations

import fcntl
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def say(message: str) -> None:
    print(f"[gavel] {message}", flush=True)


def go_tool(name: str, module: str, version: str, hint: str = "", built_with: tuple[str, ...] = ()) -> Path:
    """`name` at .gavel/bin, else on PATH, else built once there with `go install module@version`.
    A lock file makes a second caller wait for a build in progress (make test starts conftest's
    in the background) instead of starting its own."""
    local = ROOT / ".gavel" / "bin" / name
    found = shutil.which(name)
    if found and not local.exists():
        return Path(found)
    local.parent.mkdir(parents=True, exist_ok=True)
    with open(local.parent / f".{name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if local.exists():
            return local
        go = shutil.which("go")
        if not go:
            raise SystemExit(
                f"{name} is not installed and Go is not available to build it. Either install Go and rerun, "
                f"or put a `{name}` {version} binary on PATH or at {local}{', ' + hint if hint else ''}."
            )
        say(f"building {name} {version} with go install (once; a few minutes)")
        env = {**os.environ, "GOBIN": str(local.parent), "CGO_ENABLED": "0"}
        if not built_with:
            subprocess.run([go, "install", f"{module}@{version}"], check=True, env=env)
        else:
            _build_with(go, module, version, built_with, local, env)
    return local


def _build_with(go: str, module: str, version: str, requirements: tuple[str, ...], binary: Path, env: dict) -> None:
    """`go install module@version`, but with some of its dependencies at the versions given
    (`path@version`): in a throwaway module that requires both, so Go's usual version selection
    decides the rest."""
    with tempfile.TemporaryDirectory(prefix="gavel-go-") as tmp:
        for argv in ([go, "mod", "init", "gavel.invalid/tools"], [go, "get", f"{module}@{version}", *requirements],
                     [go, "build", "-o", str(binary), module]):
            done = subprocess.run(argv, cwd=tmp, env=env, capture_output=True, text=True)  # `go get` lists ~100 modules
            if done.returncode != 0:
                raise SystemExit(f"{' '.join(argv[:2])} failed:\n{done.stderr[-3000:]}")
