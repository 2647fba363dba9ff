"""The test database, migrated once and then restored from a dump.

Migrating an empty database takes about a minute here (88 migrations, the activity log's
triggers the slowest), and every pytest process paid it: each shard of `make test`, and each
targeted run. The first process to need a given schema migrates it and dumps it with pg_dump
(schema and the rows migrations write: groups, permissions, content types); later processes,
holding the same lock, restore that dump in seconds. A dump is keyed by everything that could
change what migrating produces: the migration files, the pinned packages and the Postgres version.
The dumps live in the checkout's .gavel directory, shared by its stack profiles.
"""
from __future__ import annotations

import fcntl
import hashlib
import os
import subprocess
from contextlib import contextmanager
from pathlib import Path

from django.db import connection

from tests.support import stack

ROOT = Path(__file__).resolve().parent.parent
CACHE = ROOT / ".gavel" / "schema-cache"


def _tool(name: str) -> str:
    return str(stack.postgres_bindir() / name)


def _env() -> dict[str, str]:
    settings = connection.settings_dict
    return {**os.environ, "PGHOST": settings["HOST"] or "127.0.0.1", "PGPORT": str(settings["PORT"] or 5432),
            "PGUSER": settings["USER"], "PGPASSWORD": settings["PASSWORD"] or ""}


def schema_key() -> str:
    digest = hashlib.sha256()
    for path in sorted(ROOT.glob("*/migrations/*.py")):
        digest.update(str(path.relative_to(ROOT)).encode() + b"\0" + path.read_bytes())
    digest.update((ROOT / "requirements.lock").read_bytes())
    digest.update(subprocess.run([_tool("pg_dump"), "--version"], capture_output=True, text=True).stdout.encode())
    return digest.hexdigest()[:16]


def _run(argv: list[str]) -> None:
    result = subprocess.run(argv, env=_env(), capture_output=True, text=True)
    if result.returncode != 0:
        raise RuntimeError(f"{' '.join(argv[:2])} failed: {result.stderr.strip()[-2000:]}")


@contextmanager
def prepared(test_db_name: str):
    """Drops `test_db_name` and restores it from the dump when there is one, so that migrating
    it (inside the with block) finds nothing to do; else it is migrated there and dumped after."""
    CACHE.mkdir(parents=True, exist_ok=True)
    dump = CACHE / f"{schema_key()}.sql"
    with open(CACHE / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # a second shard waits for the first one's dump
        _run([_tool("psql"), "-q", "-d", "postgres", "-c", f'DROP DATABASE IF EXISTS "{test_db_name}" WITH (FORCE)'])
        if dump.exists():
            _run([_tool("psql"), "-q", "-d", "postgres", "-c", f'CREATE DATABASE "{test_db_name}"'])
            _run([_tool("psql"), "-q", "-v", "ON_ERROR_STOP=1", "-d", test_db_name, "-f", str(dump)])
            fcntl.flock(lock, fcntl.LOCK_UN)
            yield
            return
        yield
        partial = dump.with_suffix(".partial")
        _run([_tool("pg_dump"), "--no-owner", "--no-privileges", "-d", test_db_name, "-f", str(partial)])
        partial.rename(dump)  # only a whole dump is ever found
        for stale in CACHE.glob("*.sql"):
            if stale != dump:
                stale.unlink()


def set_up_test_database():
    """The test database, restored from the dump or migrated and dumped; setup_databases' config."""
    from django.test.utils import setup_databases  # noqa: PLC0415

    with prepared(connection.creation._get_test_db_name()):
        return setup_databases(verbosity=0, interactive=False, keepdb=True, serialized_aliases=[])


def main() -> None:
    """Migrate and dump the test schema ahead of the shards (scripts/test_shards.py runs this while
    OPA builds), so that every shard restores it instead of the first one migrating while the rest wait."""
    import django  # noqa: PLC0415

    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "console.settings")
    django.setup()
    set_up_test_database()


if __name__ == "__main__":
    main()
