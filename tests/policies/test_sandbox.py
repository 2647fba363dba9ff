"""Authors' Rego runs sandboxed wherever Gavel itself evaluates it: saving (tests), worked
examples, replay and explain. Each probe tries to read Gavel's environment (`opa.runtime`), to
reach a listener on 127.0.0.1 (`http.send`) and to resolve a name (`net.lookup_ip_addr`); none of
them may learn anything or reach the listener, and the author is told why in words."""
from __future__ import annotations

import http.server
import subprocess
import threading

import pytest
from django.conf import settings
from hypothesis import given
from hypothesis import strategies as st

from core.opa import sandbox
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
