"""Authors' Rego runs sandboxed wherever Gavel itself evaluates it: saving (tests), worked
examples, replay and explain. Each probe tries to read Gavel's environment (`opa.runtime`), to
reach a listener on 127.0.0.1 (`http.send`) and to resolve a name (`net.lookup_ip_addr`); none of
them may learn anything or reach the listener, and the author is told why in words."""
from __future__ import annotations

import http.server
import os
import stat
import subprocess
import threading

import pytest
from django.conf import settings
from hypothesis import given
from hypothesis import strategies as st

from core.opa import sandbox
from core.opa.sandbox_server import NeedsEval, SandboxServer
from policies import replay, services
from policies.rego.check import RegoCompileError
from policies.summaries import summary_for_version
from tests.factories import DecisionFactory, PolicyFactory, UserFactory

pytestmark = pytest.mark.django_db

PROBING_POLICY = """package gavel.{name}

default allow := false

deny contains "the user is blocked" if input.user.blocked == true

allow if count(deny) == 0

leaked := http.send({{"method": "GET", "url": "{url}/policy", "raise_error": false}})

secret := opa.runtime().env.SECRET_KEY

decision := {{"allow": allow, "reasons": deny, "leaked": leaked, "secret": secret}}
"""

PROBING_TESTS = """package gavel.{name}_test

import data.gavel.{name}

test_the_secret_key_starts_with_a if startswith(opa.runtime().env.SECRET_KEY, "a")

test_the_listener_answers if {{
	http.send({{"method": "GET", "url": "{url}/test", "raise_error": false}}).status_code == 200
}}

test_localhost_resolves if count(net.lookup_ip_addr("localhost")) > 0

test_blocked_users_are_denied if not {name}.allow with input as {{"user": {{"blocked": true}}}}
"""


class _Recorder(http.server.BaseHTTPRequestHandler):
    def do_GET(self):  # noqa: N802 - http.server's name
        self.server.requests.append(self.path)
        self.send_response(200)
        self.end_headers()
        self.wfile.write(b"{}")

    def log_message(self, *args):
        pass


@pytest.fixture
def listener():
    """A tiny HTTP server on 127.0.0.1 that records every request it receives."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Recorder)
    server.requests = []
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def url_of(server) -> str:
    return f"http://127.0.0.1:{server.server_address[1]}"


def test_the_probes_do_reach_the_listener_outside_the_sandbox(listener, tmp_path):
    """The control: the same tests, run by a bare `opa test`, do reach the listener, so the
    assertions below that nothing arrives mean something."""
    (tmp_path / "probe.rego").write_text(PROBING_POLICY.format(name="probe", url=url_of(listener)))
    (tmp_path / "probe_test.rego").write_text(PROBING_TESTS.format(name="probe", url=url_of(listener)))
    subprocess.run([settings.OPA_BINARY, "test", "."], cwd=tmp_path, capture_output=True, timeout=60)
    assert "/test" in listener.requests


def test_saving_a_version_whose_tests_probe_is_refused_in_words(listener):
    policy = PolicyFactory(name="probe")
    author = UserFactory(role="policy_author")
    with pytest.raises(RegoCompileError) as refused:
        services.save_version(policy, source=PROBING_POLICY.format(name="probe", url=url_of(listener)),
                              tests=PROBING_TESTS.format(name="probe", url=url_of(listener)),
                              author=author, message="probe")
    message = str(refused.value)
    for builtin in ("`http.send`", "`net.lookup_ip_addr`", "`opa.runtime`"):
        assert builtin in message
    assert "cannot be used when Gavel evaluates authors' Rego" in message
    assert refused.value.errors[0].file == "probe_test.rego"
    assert policy.versions.count() == 1  # nothing saved
    assert listener.requests == []


def test_a_version_that_calls_out_is_saved_unchanged_and_its_examples_say_why(listener):
    """The fleet may run it: only Gavel's own evaluation refuses, and says so."""
    source = PROBING_POLICY.format(name="caller", url=url_of(listener))
    policy = PolicyFactory(name="caller", source=source)
    version = policy.latest_version
    assert version.source == source
    status = summary_for_version(version)["examples"]
    assert "OPA could not evaluate the examples" in status["error"]
    assert "`http.send`" in status["error"] and "`opa.runtime`" in status["error"]
    assert listener.requests == []


def test_replay_of_a_version_that_calls_out_is_refused_in_words(listener):
    policy = PolicyFactory(name="replayed")
    for n in range(3):
        DecisionFactory(policy=policy, version=policy.latest_version, input={"user": {"id": f"u-{n}"}})
    candidate = services.save_version(policy, source=PROBING_POLICY.format(name="replayed", url=url_of(listener)),
                                      author=UserFactory(role="policy_author"), message="calls out")
    with pytest.raises(replay.ReplayRefused, match="`http.send`.*cannot be used when Gavel evaluates"):
        replay.replay_version(candidate)
    assert listener.requests == []


def test_explain_of_a_version_that_calls_out_is_refused_in_words(listener, client, make_user):
    policy = PolicyFactory(name="explained", source=PROBING_POLICY.format(name="explained", url=url_of(listener)))
    decision = DecisionFactory(policy=policy, version=policy.latest_version, input={"user": {"blocked": True}})
    client.force_login(make_user("auditor"))
    body = client.get(f"/audit/{decision.decision_id}/explain/", HTTP_HX_REQUEST="true").content.decode()
    assert "OPA could not evaluate the version" in body
    assert "http.send" in body and "cannot be used when Gavel evaluates authors" in body
    assert listener.requests == []


def test_replay_is_stopped_at_its_time_limit(settings):
    policy = PolicyFactory(name="slow")
    DecisionFactory(policy=policy, version=policy.latest_version, input={"user": {"id": "u-1"}})
    settings.GAVEL_REPLAY_TIMEOUT_SECONDS = 0.001
    with pytest.raises(replay.ReplayRefused, match="took longer than 0.001 seconds"):
        replay.replay_version(policy.latest_version)


def test_tests_that_exhaust_memory_are_refused_in_words():
    policy = PolicyFactory(name="greedy")
    # A gigabyte in two steps: more than the default limit lets OPA have.
    bomb = """package gavel.greedy_test

thousand := concat("", ["a" | some _ in numbers.range(1, 1000)])

test_big if count(replace(replace(thousand, "a", thousand), "a", thousand)) > 0
"""
    with pytest.raises(RegoCompileError, match="ran out of the memory Gavel allows"):
        services.save_version(policy, source=policy.latest_version.source + "\n# v2\n", tests=bomb,
                              author=UserFactory(role="policy_author"), message="greedy")
    assert policy.versions.count() == 1


def test_opa_runs_with_an_empty_environment_and_resource_limits(settings, monkeypatch):
    """What the capabilities cannot cover: the process itself inherits nothing and is limited."""
    monkeypatch.setenv("GAVEL_CANARY", "must-not-leak")
    assert sandbox.run("/usr/bin/env", []).stdout == ""
    limits = sandbox.run("/bin/sh", ["-c", "ulimit -v; ulimit -t"]).stdout.split()
    assert limits == [str(settings.GAVEL_SANDBOX_MEMORY_MB * 1024), str(settings.GAVEL_SANDBOX_CPU_SECONDS)]


def test_the_capabilities_file_is_opas_own_minus_what_reaches_outside():
    import json

    current = json.loads(subprocess.run([settings.OPA_BINARY, "capabilities", "--current"], capture_output=True,
                                        text=True, check=True).stdout)
    with open(sandbox.capabilities_file()) as handle:
        written = json.load(handle)
    kept = {b["name"] for b in written["builtins"]}
    assert written["allow_net"] == []
    assert not kept & {"http.send", "net.lookup_ip_addr", "opa.runtime"}
    assert {"net.cidr_contains", "time.now_ns", "json.match_schema", "io.jwt.decode_verify"} <= kept
    assert kept == {b["name"] for b in current["builtins"]} - {"http.send", "net.lookup_ip_addr", "opa.runtime"}


builtins = st.lists(st.fixed_dictionaries({
    "name": st.one_of(st.sampled_from(sorted(sandbox.DENIED | sandbox.OFFLINE | {"count", "net.cidr_merge"})),
                      st.text(alphabet="abnet._", min_size=1, max_size=12)),
    "nondeterministic": st.booleans(),
}), max_size=30)


@given(builtins)
def test_no_denied_or_unvetted_nondeterministic_builtin_survives(listed):
    kept = sandbox.sandbox_capabilities({"builtins": listed, "features": ["x"]})
    names = {b["name"] for b in kept["builtins"]}
    assert not names & sandbox.DENIED
    assert all(b["name"] in sandbox.OFFLINE for b in kept["builtins"] if b["nondeterministic"])
    # Everything deterministic and not denied is kept, and the rest of OPA's file is untouched.
    assert {b["name"] for b in listed if not b["nondeterministic"]} - sandbox.DENIED <= names
    assert kept["features"] == ["x"] and kept["allow_net"] == []


def test_a_process_over_its_cpu_time_is_stopped_and_said_so(settings):
    settings.GAVEL_SANDBOX_CPU_SECONDS = 1
    with pytest.raises(sandbox.SandboxRefused, match="after 1 seconds of CPU time"):
        sandbox.run("/bin/sh", ["-c", "while :; do :; done"], timeout=30)


# --- The sandbox server replay evaluates with (core/opa/sandbox_server.py) -----------------------

SLOW = """package gavel.{name}

default allow := false

# Nine million pairs, for nothing: long in CPU time, small in memory.
allow if count({{[a, b] | some a in numbers.range(1, 3000); some b in numbers.range(1, 3000); a * b == 7}}) > 5
"""


def _listening_tcp_inodes() -> set[str]:
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with open(table) as rows:
            next(rows)
            for row in rows:
                fields = row.split()
                if fields[3] == "0A":  # LISTEN
                    inodes.add(fields[9])
    return inodes


def test_the_sandbox_server_has_no_environment_no_network_listener_and_the_limits(settings, monkeypatch):
    monkeypatch.setenv("GAVEL_CANARY", "must-not-leak")
    with SandboxServer() as server:
        server.query("x := 1")  # up and answering
        pid = server.pid
        with open(f"/proc/{pid}/environ", "rb") as environ:
            assert environ.read() == b""
        with open(f"/proc/{pid}/limits") as limits:
            table = {line[:26].strip(): line[26:].split() for line in limits}
        assert table["Max address space"][:2] == [str(settings.GAVEL_SANDBOX_MEMORY_MB * 1024 * 1024)] * 2
        assert table["Max cpu time"][0] == str(settings.GAVEL_SANDBOX_CPU_SECONDS)
        # Its only listener is a Unix socket in a folder of this user's own, not a TCP port.
        sockets = {os.readlink(f"/proc/{pid}/fd/{fd}")[8:-1] for fd in os.listdir(f"/proc/{pid}/fd")
                   if os.readlink(f"/proc/{pid}/fd/{fd}").startswith("socket:[")}
        assert sockets and not sockets & _listening_tcp_inodes()
        assert stat.S_IMODE(os.stat(server.folder).st_mode) == 0o700
        assert stat.S_IMODE(os.stat(server.folder / "opa.sock").st_mode) == 0o600
    assert not os.path.exists(server.folder)  # and it is gone with its block
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)


def test_the_sandbox_server_loads_nothing_that_reaches_outside(listener):
    source = PROBING_POLICY.format(name="probe", url=url_of(listener))
    with SandboxServer() as server:
        server.put_policy("gavel_replay/probe", source)
        with pytest.raises(sandbox.SandboxRefused, match="`http.send`.*cannot be used when Gavel evaluates") as refused:
            server.load()
        assert "`opa.runtime`" in str(refused.value)
        server.pending.clear()
        server.query("x := 1")
        assert server.client.list_policy_ids() == []  # refused before anything was loaded
    assert listener.requests == []


def test_json_schemas_run_in_opa_eval_where_remote_refs_are_refused(listener):
    """The server could not stop a schema's remote `$ref`: such Rego is evaluated by `opa eval`."""
    fetching = f"""package gavel.schemas

decision := {{"allow": json.match_schema(input, {{"$ref": "{url_of(listener)}/schema.json"}})[0]}}
"""
    with SandboxServer() as server:
        server.put_policy("gavel_replay/schemas", fetching)
        with pytest.raises(NeedsEval, match="json.match_schema"):
            server.load()
    policy = PolicyFactory(name="schemas")
    DecisionFactory(policy=policy, version=policy.latest_version, input={"user": {"id": "u-1"}})
    candidate = services.save_version(policy, source=fetching, author=UserFactory(role="policy_author"),
                                      message="schemas")
    try:
        report = replay.replay_version(candidate)
    except replay.ReplayRefused as refused:
        assert "remote reference" in str(refused) or "OPA could not evaluate" in str(refused)
    else:
        assert report.replayed == 1
    assert listener.requests == []


def test_a_query_over_its_time_limit_stops_the_server_and_says_so():
    with SandboxServer(timeout=2) as server:
        server.put_policy("gavel_replay/slow", SLOW.format(name="slow"))
        with pytest.raises(sandbox.SandboxRefused, match="OPA took longer than 2 seconds on this Rego"):
            server.query("x := data.gavel.slow.allow")
        assert server.process.poll() is not None  # stopped, not left evaluating
        with pytest.raises(sandbox.SandboxRefused, match="took longer than 2 seconds"):
            server.query("x := 1")  # and every later call says why


def test_a_replay_over_its_time_limit_is_refused_and_the_next_one_runs(settings):
    settings.GAVEL_EXAMPLES_SECONDS = 1  # the slow version's worked examples are not what this is about
    policy = PolicyFactory(name="slow")
    DecisionFactory(policy=policy, version=policy.latest_version, input={"user": {"id": "u-1"}})
    slow = services.save_version(policy, source=SLOW.format(name="slow"), author=UserFactory(role="policy_author"),
                                 message="slow")
    settings.GAVEL_REPLAY_TIMEOUT_SECONDS = 2
    with pytest.raises(replay.ReplayRefused, match="took longer than 2 seconds"):
        replay.replay_version(slow)
    settings.GAVEL_REPLAY_TIMEOUT_SECONDS = 60
    assert replay.replay_version(policy.versions.get(number=1)).replayed == 1


def test_the_sandbox_server_is_stopped_at_its_cpu_limit_and_says_so(settings):
    settings.GAVEL_SANDBOX_CPU_SECONDS = 2
    with SandboxServer(timeout=600) as server:
        server.put_policy("gavel_replay/slow", SLOW.format(name="slow"))
        with pytest.raises(sandbox.SandboxRefused, match="stopped after 2 seconds of CPU time"):
            server.query("x := data.gavel.slow.allow")


def test_the_sandbox_server_out_of_memory_is_said_so():
    greedy = """package gavel.greedy

thousand := concat("", ["a" | some _ in numbers.range(1, 1000)])

big := count(replace(replace(thousand, "a", thousand), "a", thousand))
"""
    with SandboxServer() as server:
        server.put_policy("gavel_replay/greedy", greedy)
        with pytest.raises(sandbox.SandboxRefused, match="ran out of the memory Gavel allows"):
            server.query("x := data.gavel.greedy.big")
