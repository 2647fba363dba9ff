#!/usr/bin/env python3
"""The S3-compatible server Gavel's tests and `make run` publish bundles to (fleet/delivery/storage.py):
Versity's S3 gateway, versitygw (Apache-2.0), serving a directory, with two keys: Gavel's, which
may write (the gateway's root account), and OPA's, which may only read the bundles bucket (an
account with no rights of its own, granted s3:GetObject there by a bucket policy).

    python scripts/s3_server.py up --profile dev     # run one on the profile's ports until Ctrl-C
    python scripts/stack.py versitygw-binary         # find or build versitygw (pinned there), print its path

Why not SeaweedFS, which issue 18 first named: from an empty Go cache its `weed` had used 18.7
CPU-minutes and was still compiling, where versitygw builds with a plain `go install` in 5.1
(like OPA and conftest, once, into .gavel/bin); CI has 20 minutes on two cores for everything.
"""
from __future__ import annotations

import argparse
import json
import os
import secrets
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import boto3
from botocore.config import Config

import stack  # scripts/stack.py: the profiles, stop_process, stop_on_signals
from go_tools import say

BUCKET = "gavel-bundles"
REGION = "us-east-1"


@dataclass(frozen=True)
class Ports:
    s3: int
    admin: int  # versitygw's admin API (accounts), loopback only


def profile_ports(postgres_port: int) -> Ports:
    """Fixed ports per stack profile (scripts/stack.py), below Linux's ephemeral range: dev 31003
    and 31004, each further profile 10 higher, as their Postgres ports are."""
    base = 31000 + (postgres_port - 30329)
    return Ports(s3=base + 3, admin=base + 4)


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


def read_only_policy(reader_key: str, bucket: str = BUCKET) -> dict:
    return {"Version": "2012-10-17", "Statement": [{
        "Effect": "Allow", "Principal": {"AWS": [reader_key]}, "Action": ["s3:GetObject"],
        "Resource": [f"arn:aws:s3:::{bucket}/*"]}]}


def start_s3(home: Path, ports: Ports, credentials: Credentials) -> subprocess.Popen:
    """versitygw on loopback serving `home`/data; the bundles bucket exists and OPA's key may read
    it when this returns."""
    binary = stack.versitygw_binary()
    for part in ("data", "iam"):
        (home / part).mkdir(parents=True, exist_ok=True)
    log = open(home / "versitygw.log", "ab")
    env = {**os.environ, "ROOT_ACCESS_KEY_ID": credentials.writer[0], "ROOT_SECRET_ACCESS_KEY": credentials.writer[1]}
    command = [str(binary), "--port", f"127.0.0.1:{ports.s3}", "--admin-port", f"127.0.0.1:{ports.admin}",
               "--region", REGION, "--iam-dir", str(home / "iam"), "--quiet", "posix", str(home / "data")]
    proc = subprocess.Popen(command, cwd=home, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        wait_for_s3(ports.s3, proc, home / "versitygw.log")
        grant_reader(binary, ports, credentials)
    except BaseException:
        stack.stop_process(proc, "versitygw")
        raise
    return proc


def grant_reader(binary: Path, ports: Ports, credentials: Credentials) -> None:
    """OPA's account (once), the bucket, and the policy that lets OPA's key read it and nothing else."""
    admin = [str(binary), "admin", "--access", credentials.writer[0], "--secret", credentials.writer[1],
             "--endpoint-url", f"http://127.0.0.1:{ports.admin}"]
    listed = subprocess.run([*admin, "list-users"], check=True, capture_output=True, text=True).stdout
    if credentials.reader[0] not in listed.split():
        subprocess.run([*admin, "create-user", "--access", credentials.reader[0], "--secret", credentials.reader[1],
                        "--role", "user"], check=True, capture_output=True, text=True)
    s3 = boto3.client("s3", endpoint_url=f"http://127.0.0.1:{ports.s3}", region_name=REGION,
                      aws_access_key_id=credentials.writer[0], aws_secret_access_key=credentials.writer[1],
                      config=Config(s3={"addressing_style": "path"}))
    if BUCKET not in {bucket["Name"] for bucket in s3.list_buckets().get("Buckets", [])}:
        s3.create_bucket(Bucket=BUCKET)
    s3.put_bucket_policy(Bucket=BUCKET, Policy=json.dumps(read_only_policy(credentials.reader[0])))


def wait_for_s3(port: int, proc: subprocess.Popen, log: Path, timeout: float = 30.0) -> None:
    """Until the gateway answers HTTP (403 without credentials is an answer)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"versitygw exited with code {proc.returncode}; see {log}")
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=2)
            return
        except urllib.error.HTTPError:
            return
        except OSError:
            time.sleep(0.2)
    raise SystemExit(f"versitygw did not answer on 127.0.0.1:{port} within {timeout:.0f}s; see {log}")


def main() -> int:
    stack.stop_on_signals()  # Ctrl-C and `kill` both stop the gateway, also from a background job
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    up = sub.add_parser("up", help="run the S3 server on the profile's ports until interrupted")
    up.add_argument("--profile", default="dev")
    args = parser.parse_args()
    profile = stack.PROFILES[args.profile]
    home = profile.home / "s3"
    credentials = profile_credentials(home)
    ports = profile_ports(profile.postgres_port)
    proc = start_s3(home, ports, credentials)
    say(f"S3 on http://127.0.0.1:{ports.s3} (bucket {BUCKET}); Ctrl-C stops it. For Gavel: "
        f"GAVEL_BUNDLE_S3_ENDPOINT=http://127.0.0.1:{ports.s3} GAVEL_BUNDLE_S3_ACCESS_KEY={credentials.writer[0]} "
        f"GAVEL_BUNDLE_S3_SECRET_KEY=<writer in {home / 'credentials.json'}>; OPA's read-only key is the reader there.")
    try:
        proc.wait()
    except KeyboardInterrupt:
        stack.stop_process(proc, "versitygw")
    return 0


if __name__ == "__main__":
    sys.exit(main())
