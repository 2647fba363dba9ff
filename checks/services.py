"""CI checks: what `gavel check`, `gavel verify` and `gavel replay` ask of Gavel (checks/api.py
serves them; the CLI is gavel_cli/, which knows nothing of Django).

A check evaluates documents against the versions an environment runs (evaluate.py) and stores
every verdict as a decision through the audit trail's own path (audit/ingest/ci.py, then
core/store.py), marked as coming from CI with the pipeline's commit, branch and job.
"""
from __future__ import annotations

import uuid
from typing import Any

from django.conf import settings
from django.utils import timezone

from audit.ingest.ci import store_ci_decisions
from core.models import Outcome
from core.outcomes import derive_outcome
from fleet.models import Environment
from policies import replay, services
from policies.models import Policy, PolicyVersion
from rollout.entrypoint import entry_data_path

from .evaluate import CheckUnavailable, Verdict, active_versions, evaluate

__all__ = ["CheckRefused", "CheckUnavailable", "run_check", "verify", "replay_gate"]

# The pipeline's own metadata a check may carry (gavel_cli reads it from the CI's variables).
CI_FIELDS = ("provider", "commit", "branch", "job_url", "pipeline", "repository", "actor")
FILE_CHARS = 300


class CheckRefused(ValueError):
    """A check that cannot run as asked: the message says why (an unknown environment, no policy)."""


def _environment(name: str) -> Environment:
    environment = Environment.objects.filter(name=name).first()
    if environment is None:
        raise CheckRefused(f"there is no environment {name!r}")
    return environment


def clean_ci(ci: Any) -> dict[str, str]:
    if ci in (None, ""):
        return {}
    if not isinstance(ci, dict):
        raise CheckRefused("ci must be an object of strings (commit, branch, job_url, ...)")
    unknown = set(ci) - set(CI_FIELDS)
    if unknown:
        raise CheckRefused(f"unknown ci fields: {', '.join(sorted(map(str, unknown)))}; known: {', '.join(CI_FIELDS)}")
    if not all(isinstance(v, str) for v in ci.values()):
        raise CheckRefused("every ci field must be a string")
    return {key: value for key, value in ci.items() if value}


def clean_documents(documents: Any) -> list[dict]:
    if not isinstance(documents, list) or not documents:
        raise CheckRefused("documents must be a non-empty list of {file, input}")
    if len(documents) > settings.GAVEL_CHECK_MAX_DOCUMENTS:
        raise CheckRefused(f"at most {settings.GAVEL_CHECK_MAX_DOCUMENTS} documents per check "
                           f"(GAVEL_CHECK_MAX_DOCUMENTS); got {len(documents)}")
    cleaned = []
    for number, document in enumerate(documents):
        if not isinstance(document, dict) or "input" not in document:
            raise CheckRefused(f"document {number} must be an object with `file` and `input`")
        name = document.get("file", "")
        if not isinstance(name, str) or len(name) > FILE_CHARS:
            raise CheckRefused(f"document {number}: file must be a string of at most {FILE_CHARS} characters")
        cleaned.append({"file": name or f"document-{number}", "input": document["input"]})
    return cleaned


def status_of(outcome: str) -> str:
    """conftest's words: a denial (or an action held for approval) fails, a dry-run denial warns."""
    if outcome in (Outcome.DENY, Outcome.REQUIRE_APPROVAL, Outcome.UNDEFINED):
        return "fail"
    return "warn" if outcome == Outcome.WOULD_DENY else "pass"


def _waived(verdict: Verdict) -> list[dict]:
    """The denials the environment's exceptions waived: [{"message", "exceptions": [ids]}]."""
    by_reason: dict[str, set] = {}
    for reason, exception_id in verdict.waivers:
        by_reason.setdefault(str(reason), set()).add(exception_id)
    return [{"message": reason, "exceptions": sorted(ids)} for reason, ids in sorted(by_reason.items())]


def _row(document: dict, verdict: Verdict, decision_id: str) -> dict:
    outcome, reasons = derive_outcome(verdict.result)
    warnings = [w if isinstance(w, str) else str(w.get("msg", w)) if isinstance(w, dict) else str(w)
                for w in verdict.warnings]
    status = status_of(outcome)
    if status == "warn":
        warnings, reasons = reasons + warnings, []
    elif status == "pass":
        reasons = []
    if status == "fail" and not reasons:
        reasons = ["held for approval" if outcome == Outcome.REQUIRE_APPROVAL else f"the policy answered {outcome}"]
    if status == "pass" and warnings:
        status = "warn"
    policy = verdict.version.policy
    return {"file": document["file"], "document": verdict.document, "policy": policy.name,
            "namespace": policy.package, "version": verdict.version.number, "status": status, "outcome": outcome,
            "failures": reasons, "warnings": warnings,
            "exceptions_applied": list(verdict.result.get("exceptions_applied") or []), "waived": _waived(verdict),
            "effective_mode": verdict.result.get("effective_mode", ""), "decision_id": decision_id}


def summarize(results: list[dict]) -> dict:
    return {"tests": len(results), "passed": sum(r["status"] == "pass" for r in results),
            "warnings": sum(r["status"] == "warn" for r in results),
            "failures": sum(r["status"] == "fail" for r in results),
            "exceptions": sum(bool(r["exceptions_applied"]) for r in results)}


def run_check(*, user, environment: str, documents: Any, policy: str = "", namespace: str = "",
              ci: Any = None) -> dict:
    """Check documents against the environment's active versions and store each verdict as a
    decision. Raises CheckRefused for a request that cannot be checked, CheckUnavailable when
    OPA could not evaluate."""
    where = _environment(environment)
    documents, ci = clean_documents(documents), clean_ci(ci)
    versions = active_versions(where, policy=policy or "", namespace=namespace or "")
    if not versions:
        which = f" named {policy!r}" if policy else f" in package {namespace!r}" if namespace else ""
        raise CheckRefused(f"{environment} runs no policy{which}: nothing to check against")
    verdicts = evaluate(where, versions, [d["input"] for d in documents])
    check_id, now = uuid.uuid4().hex, timezone.now().isoformat()
    results, events = [], []
    for verdict in verdicts:
        document = documents[verdict.document]
        decision_id = f"ci-{uuid.uuid4().hex}"
        results.append(_row(document, verdict, decision_id))
        labels = {**ci, "check": check_id, "file": document["file"], "document": str(verdict.document)}
        events.append({"decision_id": decision_id, "timestamp": now, "input": document["input"],
                       "path": entry_data_path(verdict.version.policy.name), "result": verdict.result,
                       "labels": labels, "requested_by": user.get_username()})
    store_ci_decisions(events, where.name)
    return {"environment": where.name, "check": check_id, "results": results, "summary": summarize(results)}


def _version(policy_name: str, number: Any = None, environment: str = "") -> PolicyVersion:
    policy = Policy.objects.filter(name=policy_name).first()
    if policy is None:
        raise CheckRefused(f"there is no policy {policy_name!r}")
    if number not in (None, ""):
        try:
            return policy.versions.get(number=int(number))
        except (ValueError, TypeError, PolicyVersion.DoesNotExist):
            raise CheckRefused(f"{policy_name} has no version {number}") from None
    if environment:
        running = policy.active_version_in(_environment(environment))
        if running is None:
            raise CheckRefused(f"{environment} runs no version of {policy_name}")
        return running
    return policy.latest_version


def verify(*, policy: str, version: Any = None, environment: str = "") -> dict:
    """Run a version's Rego tests in Gavel's sandbox, as `conftest verify` runs a policy's tests
    (default: the version the environment runs, else the latest)."""
    chosen = _version(policy, version, environment)
    if not chosen.tests.strip():
        return {"policy": policy, "version": chosen.number, "results": [], "passed": True, "coverage": None}
    report = services.run_version_tests(chosen)
    return {"policy": policy, "version": chosen.number, "results": report.results, "passed": report.passed,
            "coverage": report.coverage}


def replay_gate(*, user, policy: str, version: Any, environment: str = "", last: Any = None) -> dict:
    """The impact gate: replay recorded decisions through a version and count what would change.
    Examples carry recorded inputs, so only readers of the audit trail get them."""
    chosen = _version(policy, version)
    try:
        report = replay.replay_version(chosen, last=last, environment=_environment(environment) if environment else None)
    except replay.ReplayRefused as exc:
        raise CheckRefused(str(exc)) from exc
    answer = report.as_dict()
    if not user.has_perm("core.view_decision"):
        answer["examples"] = {}
    return {"policy": policy, "version": chosen.number, **answer}
