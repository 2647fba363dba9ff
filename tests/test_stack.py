"""The project's own stacks (scripts/stack.py): Postgres sized for what each one holds, and
stopped whatever happens to the output."""
import os
import sys

from tests.support import stack


def settings(profile: str) -> dict[str, str]:
    pairs = stack.postgres_settings(stack.PROFILES[profile]).split(" -c ")[1:]
    return dict(pair.strip().split("=", 1) for pair in pairs)


def megabytes(value: str) -> int:
    assert value.endswith("MB"), value
    return int(value[:-2])


def test_test_stacks_keep_postgres_defaults_and_the_others_are_sized_for_the_machine():
    assert settings("test") == settings("test4") == {}
    bench, dev = settings("bench"), settings("dev")
    assert 128 <= megabytes(dev["shared_buffers"]) <= megabytes(bench["shared_buffers"]) <= 8192
    assert megabytes(bench["effective_cache_size"]) > megabytes(bench["shared_buffers"])
    assert (bench["max_wal_size"], dev["max_wal_size"], bench["checkpoint_timeout"]) == ("16GB", "4GB", "30min")
    assert settings("smoke") == dev  # `make run` as the suite runs it starts Postgres with these


def test_progress_to_a_reader_that_went_away_does_not_stop_the_cleanup(monkeypatch):
    """`stack.py exec ... | head` closes the pipe early; stopping Postgres and Redis still runs."""
    read, write = os.pipe()
    os.close(read)
    with os.fdopen(write, "w") as closed:
        monkeypatch.setattr(sys, "stdout", closed)
        stack.say("Redis stopped")  # raised BrokenPipeError, and the services after it stayed up
        monkeypatch.undo()
