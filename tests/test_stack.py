"""The project's own stacks (scripts/stack.py): Postgres sized for what each one holds, ports that
side-by-side stacks never share, and stopped whatever happens to the output."""
import os
import socket
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


def test_postgres_is_sized_for_a_containers_memory_limit_not_the_hosts(monkeypatch, tmp_path):
    limit = tmp_path / "memory.max"
    monkeypatch.setattr(stack, "CGROUP_MEMORY_LIMITS", (str(tmp_path / "absent"), str(limit)))
    limit.write_text("max\n")  # no limit: the host's memory
    assert stack.memory_mib() == os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") // 2**20
    limit.write_text(f"{2 * 2**30}\n")  # a 2 GiB container on a larger host
    assert stack.memory_mib() == min(2048, os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") // 2**20)
    bench = settings("bench")
    assert megabytes(bench["shared_buffers"]) == max(128, stack.memory_mib() // 6)
    assert megabytes(bench["effective_cache_size"]) == stack.memory_mib() // 2


def test_progress_to_a_reader_that_went_away_does_not_stop_the_cleanup(monkeypatch):
    """`stack.py exec ... | head` closes the pipe early; stopping Postgres and Redis still runs."""
    read, write = os.pipe()
    os.close(read)
    with os.fdopen(write, "w") as closed:
        monkeypatch.setattr(sys, "stdout", closed)
        stack.say("Redis stopped")  # raised BrokenPipeError, and the services after it stayed up
        monkeypatch.undo()


def test_test_stacks_hand_out_ports_from_blocks_of_their_own():
    blocks = [stack.PROFILES[name].ports for name in ("test", *(f"test{n}" for n in range(2, 9)))]
    taken = [port for block in blocks for port in block]
    assert len(taken) == len(set(taken)) == 8 * 500  # no two stacks share a port
    fixed = {p for profile in stack.PROFILES.values() for p in (profile.postgres_port, profile.redis_port,
                                                                 profile.opa_port, profile.web_port)}
    assert not fixed & set(taken) and max(taken) < 32768  # below Linux's ephemeral range


def test_a_port_a_test_freed_is_not_handed_out_again_until_the_block_comes_round(monkeypatch):
    """A stopped OPA's port must stay dead while the test expects it unreachable (another
    shard's new OPA took one and answered for it)."""
    monkeypatch.setenv("GAVEL_PORTS", "24990-24999")  # above every stack's block: no shard's servers there
    held = socket.socket()
    held.bind(("127.0.0.1", 24995))
    try:
        ports = [stack.free_port() for _ in range(9)]
    finally:
        held.close()
    assert sorted(ports) == [p for p in range(24990, 25000) if p != 24995]  # each once, the held one skipped
    monkeypatch.setenv("GAVEL_PORTS", "")
    assert not 20000 <= stack.free_port() < 24000  # outside a test stack: whatever the kernel gives
