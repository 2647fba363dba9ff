#!/usr/bin/env python3
"""SeaweedFS (Apache-2.0), the S3-compatible server Gavel's tests and `make run` publish bundles
to (fleet/delivery/storage.py), with static credentials: one key that may write (Gavel), one that may only
read the bundles bucket (OPA).

    python scripts/seaweed.py weed-binary                    # find or build weed, print its path
    python scripts/seaweed.py up --profile dev               # run it on the profile's ports until Ctrl-C

`go install module/weed@version` is refused for SeaweedFS (its go.mod has a replace directive),
so the pinned module is downloaded with `go mod download` and `weed` built inside it, once, into
.gavel/bin, under a lock like the other Go tools (scripts/go_tools.py): `make test` starts the
build in the background and the tests that need it wait for it. Only the standard library.
"""
from __future__ import annotations

import argparse
import fcntl
import json
import os
import secrets
import shutil
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import stack  # scripts/stack.py: the profiles, stop_process
from go_tools import ROOT, say

SEAWEED_VERSION = "v0.0.0-20261109003541-7506e5f91cd6"  # the one place SeaweedFS is pinned
SEAWEED_MODULE = "github.com/seaweedfs/seaweedfs"
BUCKET = "gavel-bundles"
REGION = "us-east-1"


def weed_binary() -> Path:
    """`weed` at .gavel/bin, else on PATH, else built there once (a few minutes on two cores)."""
    local = ROOT / ".gavel" / "bin" / "weed"
    found = shutil.which("weed")
    if found and not local.exists():
        return Path(found)
    local.parent.mkdir(parents=True, exist_ok=True)
    with open(local.parent / ".weed.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if local.exists():
            return local
        go = shutil.which("go")
        if not go:
            raise SystemExit(f"weed is not installed and Go is not available to build it: install Go, or put a "
                             f"SeaweedFS {SEAWEED_VERSION} `weed` on PATH or at {local}.")
        say(f"building SeaweedFS weed {SEAWEED_VERSION} (once; several minutes)")
        env = {**os.environ, "CGO_ENABLED": "0"}
        listed = subprocess.run([go, "mod", "download", "-json", f"{SEAWEED_MODULE}@{SEAWEED_VERSION}"],
                                check=True, capture_output=True, text=True, env=env)
        source = json.loads(listed.stdout)["Dir"]
        partial = local.with_suffix(".partial")
        subprocess.run([go, "build", "-trimpath", "-o", str(partial), "./weed"], cwd=source, check=True, env=env)
        partial.rename(local)  # only a finished build is ever found at .gavel/bin/weed
    return local


@dataclass(frozen=True)
class Ports:
    master: int
    volume: int
    filer: int
    s3: int
    grpc: tuple[int, int, int, int]  # master, volume, filer, s3 (their default, port + 10000, may not exist)


def profile_ports(postgres_port: int) -> Ports:
    """Fixed ports per stack profile (scripts/stack.py), below Linux's ephemeral range: dev 31000
    to 31007, each further profile 10 higher, as their Postgres ports are."""
    base = 31000 + (postgres_port - 54329)
    return Ports(master=base, volume=base + 1, filer=base + 2, s3=base + 3,
                 grpc=(base + 4, base + 5, base + 6, base + 7))


@dataclass(frozen=True)
class Credentials:
    writer: tuple[str, str]  # Gavel: access key id, secret
    reader: tuple[str, str]  # OPA: may only read the bundles bucket


def new_credentials() -> Credentials:
    return Credentials(writer=("gavel-" + secrets.token_hex(6), secrets.token_urlsafe(30)),
                       reader=("opa-" + secrets.token_hex(6), secrets.token_urlsafe(30)))


def profile_credentials(home: Path) -> Credentials:
    """The profile's keys, made on first use and kept (0600) beside its data."""
    path = home / "credentials.json"
    if not path.exists():
        home.mkdir(parents=True, exist_ok=True)
        made = new_credentials()
        with os.fdopen(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "w") as out:
            json.dump({"writer": made.writer, "reader": made.reader}, out)
    kept = json.loads(path.read_text())
    return Credentials(writer=tuple(kept["writer"]), reader=tuple(kept["reader"]))


def s3_config(credentials: Credentials, bucket: str = BUCKET) -> dict:
    """SeaweedFS's S3 identities: static keys and what each may do."""
    return {"identities": [
        {"name": "gavel", "credentials": [{"accessKey": credentials.writer[0], "secretKey": credentials.writer[1]}],
         "actions": ["Admin", "Read", "List", "Write", "Tagging"]},
        {"name": "opa", "credentials": [{"accessKey": credentials.reader[0], "secretKey": credentials.reader[1]}],
         "actions": [f"Read:{bucket}"]},
    ]}


def start_seaweed(home: Path, ports: Ports, credentials: Credentials) -> subprocess.Popen:
    """`weed server -s3` on loopback: master, volume, filer and the S3 gateway in one process,
    data under `home`. Returns once the S3 port answers."""
    (home / "data").mkdir(parents=True, exist_ok=True)
    config = home / "s3.json"
    with os.fdopen(os.open(config, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "w") as out:
        json.dump(s3_config(credentials), out)
    log = open(home / "weed.log", "ab")
    command = [str(weed_binary()), "server", "-ip=127.0.0.1", "-ip.bind=127.0.0.1", f"-dir={home / 'data'}",
               f"-master.port={ports.master}", f"-master.port.grpc={ports.grpc[0]}",
               f"-volume.port={ports.volume}", f"-volume.port.grpc={ports.grpc[1]}",
               f"-filer.port={ports.filer}", f"-filer.port.grpc={ports.grpc[2]}",
               "-master.volumeSizeLimitMB=64", "-volume.max=8", "-volume.preStopSeconds=0",  # stops at once
               "-s3", f"-s3.port={ports.s3}", f"-s3.port.grpc={ports.grpc[3]}", f"-s3.config={config}",
               "-s3.port.iceberg=0", "-s3.port.lance=0"]  # the catalogs' default ports would clash (OPA's 8181)
    proc = subprocess.Popen(command, cwd=home, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    wait_for_s3(ports.s3, proc, home / "weed.log")
    return proc


def wait_for_s3(port: int, proc: subprocess.Popen, log: Path, timeout: float = 90.0) -> None:
    """Until the S3 gateway answers HTTP (403 without credentials is an answer)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"weed exited with code {proc.returncode}; see {log}")
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=2)
            return
        except urllib.error.HTTPError:
            return
        except OSError:
            time.sleep(0.3)
    raise SystemExit(f"SeaweedFS's S3 gateway did not answer on 127.0.0.1:{port} within {timeout:.0f}s; see {log}")


def main() -> int:
    stack.stop_on_signals()  # Ctrl-C and `kill` both stop weed, also from a background job
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("weed-binary", help="print the path of weed, building it if needed")
    up = sub.add_parser("up", help="run SeaweedFS on the profile's ports until interrupted")
    up.add_argument("--profile", default="dev")
    args = parser.parse_args()
    if args.command == "weed-binary":
        print(weed_binary())
        return 0
    profile = stack.PROFILES[args.profile]
    credentials = profile_credentials(profile.home / "seaweed")
    ports = profile_ports(profile.postgres_port)
    proc = start_seaweed(profile.home / "seaweed", ports, credentials)
    say(f"SeaweedFS S3 on http://127.0.0.1:{ports.s3}; Ctrl-C stops it. For Gavel: "
        f"GAVEL_BUNDLE_S3_ENDPOINT=http://127.0.0.1:{ports.s3} GAVEL_BUNDLE_S3_ACCESS_KEY={credentials.writer[0]} "
        f"GAVEL_BUNDLE_S3_SECRET_KEY=<in {profile.home / 'seaweed' / 'credentials.json'}>")
    try:
        proc.wait()
    except KeyboardInterrupt:
        stack.stop_process(proc, "SeaweedFS")
    return 0


if __name__ == "__main__":
    sys.exit(main())
