"""`gavel check|verify|replay`: the CI side of Gavel, over its API with a token.

Exit codes: 0 passed, 1 denied (a failure, a failing test, a replay that changes decisions with
--fail-on-change), 2 could not check (bad files, a refusal, Gavel unreachable or too slow: closed
by default; --fail-open turns only "unreachable or too slow" into 0, and says so).
"""
from __future__ import annotations

import argparse
import os
import sys

import httpx

from . import documents, output

PASSED, DENIED, COULD_NOT_CHECK = 0, 1, 2

# The usual CI variables: GitHub Actions, GitLab CI, Jenkins; GAVEL_CI_* wins over all.
CI_VARIABLES = {
    "commit": ("GAVEL_CI_COMMIT", "GITHUB_SHA", "CI_COMMIT_SHA", "GIT_COMMIT"),
    "branch": ("GAVEL_CI_BRANCH", "GITHUB_HEAD_REF", "GITHUB_REF_NAME", "CI_COMMIT_REF_NAME", "GIT_BRANCH"),
    "job_url": ("GAVEL_CI_JOB_URL", "CI_JOB_URL", "BUILD_URL"),
    "pipeline": ("GAVEL_CI_PIPELINE", "GITHUB_WORKFLOW", "CI_PIPELINE_URL", "JOB_NAME"),
    "repository": ("GAVEL_CI_REPOSITORY", "GITHUB_REPOSITORY", "CI_PROJECT_PATH"),
    "actor": ("GAVEL_CI_ACTOR", "GITHUB_ACTOR", "GITLAB_USER_LOGIN"),
}


class Unavailable(Exception):
    """Gavel did not answer (unreachable, timed out, or a gateway said it is down)."""


class Refused(Exception):
    """Gavel answered and would not do it: the message is its reason."""


def ci_metadata(environ=os.environ) -> dict[str, str]:
    found = {key: next((environ[v] for v in names if environ.get(v)), "") for key, names in CI_VARIABLES.items()}
    if not found["job_url"] and environ.get("GITHUB_RUN_ID"):
        server = environ.get("GITHUB_SERVER_URL", "https://github.com")
        found["job_url"] = f"{server}/{environ.get('GITHUB_REPOSITORY', '')}/actions/runs/{environ['GITHUB_RUN_ID']}"
    found["provider"] = ("github" if environ.get("GITHUB_ACTIONS") else "gitlab" if environ.get("GITLAB_CI")
                         else "jenkins" if environ.get("JENKINS_URL") else "ci" if environ.get("CI") else "")
    return {key: value for key, value in found.items() if value}


def call(args, path: str, body: dict) -> dict:
    url, token = (args.url or "").rstrip("/"), args.token or ""
    if not url or not token:
        raise Refused("set GAVEL_URL and GAVEL_TOKEN (or --url and --token)")
    try:
        response = httpx.post(f"{url}/api/v1/{path}", json=body, timeout=args.timeout,
                              headers={"Authorization": f"Token {token}"})
    except httpx.TimeoutException as exc:
        raise Unavailable(f"Gavel at {url} did not answer within {args.timeout:g} s ({type(exc).__name__})") from exc
    except httpx.TransportError as exc:
        raise Unavailable(f"Gavel at {url} is unreachable ({exc or type(exc).__name__})") from exc
    if response.status_code in (502, 503, 504):
        raise Unavailable(f"Gavel at {url} is unavailable (HTTP {response.status_code})")
    try:
        answer = response.json()
    except ValueError:
        answer = {"detail": response.text[:500]}
    if response.status_code != 200:
        detail = answer.get("detail", answer) if isinstance(answer, dict) else answer
        raise Refused(f"Gavel refused (HTTP {response.status_code}): {detail}")
    return answer


def cmd_check(args) -> int:
    body = {"environment": args.env, "documents": documents.read_all(args.files), "policy": args.policy or "",
            "namespace": args.namespace or "", "ci": ci_metadata()}
    report = call(args, "checks/", body)
    print(output.render(report, args.output))
    return DENIED if report["summary"]["failures"] else PASSED


def cmd_verify(args) -> int:
    answer = call(args, "checks/verify/", {"policy": args.policy, "version": args.version, "environment": args.env or ""})
    for test in answer["results"]:
        status = test["status"].upper()
        print(f"{'PASS' if status == 'PASS' else status} - {test['package']}.{test['name']}"
              + (f" - {test['error']}" if test.get("error") else ""))
    failed = sum(t["status"] in ("fail", "error") for t in answer["results"])
    print(f"\n{len(answer['results'])} tests, {len(answer['results']) - failed} passed, {failed} failures "
          f"({answer['policy']} v{answer['version']})")
    return PASSED if answer["passed"] else DENIED


def cmd_replay(args) -> int:
    answer = call(args, "checks/replay/", {"policy": args.policy, "version": args.version,
                                           "environment": args.env or "", "last": args.last})
    print(f"{answer['policy']} v{answer['version']}: {answer['replayed']} decisions replayed"
          + (f" against {answer['against']}" if answer.get("against") else "")
          + f", {answer['changed']} would change")
    for key, count in answer["changes"].items():
        if count:
            print(f"  {key}: {count}")
    return DENIED if args.fail_on_change and answer["changed"] else PASSED


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(prog="gavel", description="Check changes against the policies Gavel published.")
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--url", default=os.environ.get("GAVEL_URL"), help="Gavel's address (GAVEL_URL)")
    common.add_argument("--token", default=os.environ.get("GAVEL_TOKEN"), help="an API token (GAVEL_TOKEN)")
    common.add_argument("--timeout", type=float, default=float(os.environ.get("GAVEL_TIMEOUT", "30")),
                        help="seconds to wait for Gavel (GAVEL_TIMEOUT, default 30)")
    common.add_argument("--fail-open", action="store_true",
                        help="pass (exit 0) when Gavel is unreachable or too slow; default: exit 2")
    commands = top.add_subparsers(dest="command", required=True)
    check = commands.add_parser("check", parents=[common], help="check files against an environment's policies")
    check.add_argument("files", nargs="+", metavar="FILE")
    check.add_argument("--env", required=True, help="the environment whose active versions decide")
    check.add_argument("--policy", help="only this policy")
    check.add_argument("--namespace", help="only the policy with this Rego package")
    check.add_argument("--output", "-o", choices=output.FORMATS, default="stdout")
    check.set_defaults(run=cmd_check)
    verify = commands.add_parser("verify", parents=[common], help="run a policy's Rego tests in Gavel")
    verify.add_argument("--policy", required=True)
    verify.add_argument("--version", type=int, help="default: the version --env runs, else the latest")
    verify.add_argument("--env")
    verify.set_defaults(run=cmd_verify)
    replay = commands.add_parser("replay", parents=[common], help="replay recorded decisions through a version")
    replay.add_argument("--policy", required=True)
    replay.add_argument("--version", type=int, required=True)
    replay.add_argument("--env", help="only the decisions of the version this environment runs")
    replay.add_argument("--last", type=int, help="how many recent decisions")
    replay.add_argument("--fail-on-change", action="store_true", help="exit 1 when any decision would change")
    replay.set_defaults(run=cmd_replay)
    return top


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        return args.run(args)
    except documents.UnreadableFile as exc:
        print(f"gavel: could not check: {exc}", file=sys.stderr)
    except Refused as exc:
        print(f"gavel: could not check: {exc}", file=sys.stderr)
    except Unavailable as exc:
        if args.fail_open:
            print(f"gavel: {exc}; passing because of --fail-open (nothing was checked)", file=sys.stderr)
            return PASSED
        print(f"gavel: could not check: {exc}; failing closed (--fail-open would pass)", file=sys.stderr)
    return COULD_NOT_CHECK


if __name__ == "__main__":
    sys.exit(main())
