"""The real `gavel` command, as a subprocess, against a running Gavel (a live server of this test
session on the test stack's Postgres, Redis and sandboxed OPA): exit codes, every output format,
fail closed and open, and each check stored in the audit trail with its CI metadata. Then the real
conftest pulls the environment's published policies from Gavel and must agree with `gavel check`."""
from __future__ import annotations

import base64
import hashlib
import json
import os
import re
import socket
import subprocess
from pathlib import Path
from urllib.parse import urlparse
from xml.etree import ElementTree

import httpx
import pytest

from core.models import CI_INSTANCE, Decision
from gavel_cli.main import ci_metadata
from tests.checks.cli import ENV, FAILING, GITHUB, PASSING, run_gavel
from tests.support import stack

# Tests read in a transaction of their own (rolled back); the world the server sees is committed.
pytestmark = pytest.mark.django_db


def gavel(world, *args, env=None, url=None):
    return run_gavel(world, *args, env=env, url=url)


def test_a_failing_plan_exits_1_with_policy_and_message_and_is_stored_with_its_ci_metadata(world):
    done = gavel(world, "check", FAILING, "--env", ENV, env=GITHUB)
    assert done.returncode == 1, done.stderr
    assert (f"FAIL - {FAILING} - gavel.provisioning - S3 bucket my-bucket must have server-side encryption enabled"
            in done.stdout.splitlines())
    assert f"FAIL - {FAILING} - gavel.provisioning - S3 bucket public-site must not have a public ACL (public-read)" \
        in done.stdout
    assert "1 test, 0 passed, 0 warnings, 1 failure, 0 exceptions" in done.stdout
    stored = Decision.objects.get(instance=CI_INSTANCE, labels__commit="3f9a1c0ffee")
    assert stored.from_ci and stored.environment == ENV and stored.outcome == "deny"
    assert stored.policy.name == "provisioning" and stored.version.number == 1
    assert stored.labels["branch"] == "feature/buckets" and stored.labels["file"] == FAILING
    assert stored.labels["job_url"] == "https://github.example/infra/live/actions/runs/77"
    assert stored.requested_by == "ci-bot"
    assert "S3 bucket my-bucket must have server-side encryption enabled" in stored.reasons
    # Auditors find it beside runtime decisions: the audit trail's own search, by instance and commit.
    found = httpx.get(f"{world['url']}/api/v1/decisions/", params={"instance": CI_INSTANCE, "q": "3f9a1c0ffee"},
                      headers={"Authorization": f"Token {world['auditor_token']}"}).json()
    assert [d["decision_id"] for d in found["results"]] == [stored.decision_id]


def test_a_passing_plan_exits_0_and_prints_its_warnings(world):
    done = gavel(world, "check", PASSING, "--env", ENV)
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"WARN - {PASSING} - gavel.provisioning - S3 bucket call-recordings has no owner tag" in done.stdout
    assert "1 test, 0 passed, 1 warning, 0 failures, 0 exceptions" in done.stdout


def test_a_plan_piped_on_standard_input_is_checked_as_file_dash(world):
    plan = Path(FAILING).read_text()
    done = run_gavel(world, "check", "-", "--env", ENV, stdin=plan)
    assert done.returncode == 1, done.stdout + done.stderr
    assert "FAIL - - - gavel.provisioning - S3 bucket my-bucket must have server-side encryption enabled" in done.stdout
    empty = run_gavel(world, "check", "-", "--env", ENV, stdin="")
    assert empty.returncode == 2 and "-: holds no document" in empty.stderr


def test_ci_metadata_is_read_from_gitlab_and_jenkins_variables_and_gavel_ci_overrides():
    gitlab = ci_metadata({"GITLAB_CI": "true", "CI_COMMIT_SHA": "abc", "CI_COMMIT_REF_NAME": "main",
                          "CI_JOB_URL": "https://gitlab.example/j/1", "CI_PROJECT_PATH": "infra/live",
                          "GITLAB_USER_LOGIN": "dana", "GAVEL_CI_BRANCH": "release"})
    assert gitlab == {"commit": "abc", "branch": "release", "job_url": "https://gitlab.example/j/1",
                      "repository": "infra/live", "actor": "dana", "provider": "gitlab"}
    jenkins = ci_metadata({"JENKINS_URL": "https://ci.example", "GIT_COMMIT": "def", "BUILD_URL": "https://ci.example/7",
                           "JOB_NAME": "plan"})
    assert jenkins == {"commit": "def", "job_url": "https://ci.example/7", "pipeline": "plan", "provider": "jenkins"}
    assert ci_metadata({}) == {}


def test_an_unreachable_gavel_fails_closed_unless_fail_open(world):
    port = stack.free_port()
    closed = gavel(world, "check", FAILING, "--env", ENV, url=f"http://127.0.0.1:{port}")
    assert closed.returncode == 2 and "unreachable" in closed.stderr and "failing closed" in closed.stderr
    opened = gavel(world, "check", FAILING, "--env", ENV, "--fail-open", url=f"http://127.0.0.1:{port}")
    assert opened.returncode == 0 and "passing because of --fail-open" in opened.stderr
    with socket.socket() as silent:  # accepts connections, never answers
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        slow = gavel(world, "check", FAILING, "--env", ENV, "--timeout", "0.5",
                     url=f"http://127.0.0.1:{silent.getsockname()[1]}")
    assert slow.returncode == 2 and "did not answer within 0.5 s" in slow.stderr


def test_bad_input_could_not_check(world, tmp_path):
    broken = tmp_path / "broken.json"
    broken.write_text("{not json")
    done = gavel(world, "check", str(broken), "--env", ENV)
    assert done.returncode == 2 and "not valid JSON" in done.stderr
    unknown = gavel(world, "check", FAILING, "--env", "nowhere")
    assert unknown.returncode == 2 and "there is no environment 'nowhere'" in unknown.stderr
    no_policy = gavel(world, "check", FAILING, "--env", ENV, "--policy", "pod_security")
    assert no_policy.returncode == 2 and f"{ENV} runs no policy named 'pod_security'" in no_policy.stderr
    no_package = gavel(world, "check", FAILING, "--env", ENV, "--namespace", "gavel.k8s")
    assert no_package.returncode == 2 and "runs no policy in package 'gavel.k8s'" in no_package.stderr


def test_policy_and_namespace_choose_what_checks(world):
    for choice in (("--policy", "provisioning"), ("--namespace", "gavel.provisioning")):
        done = gavel(world, "check", FAILING, "--env", ENV, *choice)
        assert done.returncode == 1 and "1 test, 0 passed, 0 warnings, 1 failure" in done.stdout, done.stderr


MANIFESTS = """apiVersion: v1
kind: ConfigMap
metadata: {name: one}
---
apiVersion: v1
kind: ConfigMap
metadata: {name: two}
"""


def test_every_output_format_parses(world, tmp_path):
    manifests = tmp_path / "manifests.yaml"
    manifests.write_text(MANIFESTS)
    args = ("check", FAILING, str(manifests), "--env", ENV)
    report = json.loads(gavel(world, *args, "--output", "json").stdout)
    assert [(r["file"], r["document"], r["status"]) for r in report["results"]] == [
        (FAILING, 0, "fail"), (str(manifests), 1, "pass"), (str(manifests), 2, "pass")]
    junit = gavel(world, *args, "--output", "junit")
    assert junit.returncode == 1
    suite = ElementTree.fromstring(junit.stdout).find("testsuite")
    assert suite.get("tests") == "3" and suite.get("failures") == "1"
    assert len(suite.findall("testcase/failure")) == 2
    tap = gavel(world, *args, "--output", "tap").stdout.splitlines()
    assert tap[0] == "1..3" and tap[1].startswith(f"not ok 1 - {FAILING} - gavel.provisioning")
    assert all(re.match(r"(not )?ok \d+ - ", line) for line in tap[1:] if not line.startswith("#"))
    table = gavel(world, *args, "--output", "table").stdout.splitlines()
    assert table[0].split() == ["RESULT", "FILE", "POLICY", "MESSAGE"] and table[1].startswith("fail")


def test_verify_runs_the_policys_rego_tests_in_gavel(world):
    done = gavel(world, "verify", "--policy", "provisioning", "--env", ENV)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "4 tests, 4 passed, 0 failures (provisioning v1)" in done.stdout


def conftest_agrees_with_gavel_check(world, conftest, policy_dir, environ):
    """conftest, on the policies it pulled, gives each demo plan the verdicts `gavel check` gives."""
    pulled_files = sorted(p.name for p in policy_dir.rglob("*.rego"))
    assert pulled_files == ["provisioning.rego", "provisioning_test.rego"], sorted(map(str, policy_dir.rglob("*")))
    for plan in (FAILING, PASSING):
        ours = json.loads(gavel(world, "check", plan, "--env", ENV, "--output", "json").stdout)["results"]
        theirs = subprocess.run([conftest, "test", "--policy", str(policy_dir), "--namespace",
                                 "gavel.provisioning", "--output", "json", plan], capture_output=True, text=True,
                                env=environ, cwd=policy_dir.parent, timeout=120)
        assert theirs.returncode == (1 if plan == FAILING else 0), theirs.stdout + theirs.stderr
        (result,) = json.loads(theirs.stdout)
        assert sorted(f["msg"] for f in result.get("failures") or []) == sorted(ours[0]["failures"])
        assert sorted(w["msg"] for w in result.get("warnings") or []) == sorted(ours[0]["warnings"])


def test_conftest_pull_oci_keeps_the_token_out_of_the_url_and_agrees_with_gavel_check(world, tmp_path):
    """conftest pulls an OCI artifact from Gavel's registry API with the credentials `docker login`
    stores ($DOCKER_CONFIG/config.json): the URL names no token."""
    conftest = str(stack.conftest_binary())
    host = urlparse(world["url"]).netloc  # 127.0.0.1:port: conftest speaks plain HTTP to a loopback registry
    source = f"oci://{host}/policies/{ENV}:latest"
    environ = {"HOME": str(tmp_path), "PATH": os.environ.get("PATH", ""), "DOCKER_CONFIG": str(tmp_path / "docker")}

    def pull(into):
        return subprocess.run([conftest, "pull", source, "--policy", into], capture_output=True, text=True,
                              env=environ, cwd=tmp_path, timeout=120)

    refused = pull("refused")  # no credentials stored yet: Gavel's Basic challenge finds none to answer with
    assert refused.returncode != 0 and "basic credential not found" in refused.stderr, refused.stdout + refused.stderr
    (tmp_path / "docker").mkdir()
    login = base64.b64encode(f"{world['username']}:{world['token']}".encode()).decode()
    (tmp_path / "docker" / "config.json").write_text(json.dumps({"auths": {host: {"auth": login}}}))
    pulled = pull("policy")
    assert pulled.returncode == 0, pulled.stdout + pulled.stderr
    assert world["token"] not in source
    conftest_agrees_with_gavel_check(world, conftest, tmp_path / "policy", environ)


def test_conftest_pull_over_http_with_the_token_in_the_url_agrees_with_gavel_check(world, tmp_path):
    conftest = str(stack.conftest_binary())
    # conftest's HTTP downloader reads no .netrc and sends no headers: the token goes as Basic auth in the URL.
    host = urlparse(world["url"]).netloc
    environ = {"HOME": str(tmp_path), "PATH": os.environ.get("PATH", "")}
    pulled = subprocess.run([conftest, "pull", f"http://ci-bot:{world['token']}@{host}/api/v1/checks/policies/{ENV}.tar.gz",
                             "--policy", "policy"], capture_output=True, text=True, env=environ,
                            cwd=tmp_path, timeout=120)
    assert pulled.returncode == 0, pulled.stdout + pulled.stderr
    conftest_agrees_with_gavel_check(world, conftest, tmp_path / "policy", environ)


def test_the_registry_api_answers_as_registry_clients_expect(world):
    """The manifest by tag and by digest, HEAD with the headers clients check, each blob, and
    registry errors for what Gavel does not hold; a token is needed, as Basic or as Token."""
    base = f"{world['url']}/v2/policies/{ENV}"
    auth = (world["username"], world["token"])
    anonymous = httpx.get(f"{base}/manifests/latest")
    assert anonymous.status_code == 401 and anonymous.headers["WWW-Authenticate"].startswith("Basic")
    assert httpx.get(f"{world['url']}/v2/", auth=auth).status_code == 200
    head = httpx.head(f"{base}/manifests/latest", auth=auth)
    assert head.status_code == 200 and head.content == b""
    manifest = httpx.get(f"{base}/manifests/latest", headers={"Authorization": f"Token {world['token']}",
                                                               "Accept": "application/vnd.oci.image.manifest.v1+json"})
    assert manifest.status_code == 200, manifest.text
    digest = "sha256:" + hashlib.sha256(manifest.content).hexdigest()
    assert manifest.headers["Docker-Content-Digest"] == head.headers["Docker-Content-Digest"] == digest
    assert int(head.headers["Content-Length"]) == len(manifest.content)
    assert manifest.headers["Content-Type"] == "application/vnd.oci.image.manifest.v1+json"
    assert httpx.get(f"{base}/manifests/{digest}", auth=auth).content == manifest.content
    layers = manifest.json()["layers"]
    assert [layer["annotations"]["org.opencontainers.image.title"] for layer in layers] == [
        "provisioning.rego", "provisioning_test.rego"]
    for layer in layers:
        blob = httpx.get(f"{base}/blobs/{layer['digest']}", auth=auth)
        assert "sha256:" + hashlib.sha256(blob.content).hexdigest() == layer["digest"]
        assert len(blob.content) == layer["size"]
    unknown = httpx.get(f"{base}/blobs/sha256:{'0' * 64}", auth=auth)
    assert unknown.status_code == 404 and unknown.json()["errors"][0]["code"] == "BLOB_UNKNOWN"
    assert httpx.get(f"{base}/manifests/v7", auth=auth).json()["errors"][0]["code"] == "MANIFEST_UNKNOWN"
    nowhere = httpx.get(f"{world['url']}/v2/policies/nowhere/manifests/latest", auth=auth)
    assert nowhere.status_code == 404 and nowhere.json()["errors"][0]["code"] == "NAME_UNKNOWN"
    assert httpx.get(f"{base}/manifests/latest", auth=("someone-else", world["token"])).status_code == 401
    auditor = httpx.get(f"{base}/manifests/latest", headers={"Authorization": f"Token {world['auditor_token']}"})
    assert auditor.status_code == 403


def test_the_policies_tarball_needs_a_token(world):
    url = f"{world['url']}/api/v1/checks/policies/{ENV}.tar.gz"
    assert httpx.get(url).status_code == 401
    assert httpx.get(url, auth=("someone-else", world["token"])).status_code == 401
    assert httpx.get(url, headers={"Authorization": f"Token {world['token']}"}).status_code == 200
