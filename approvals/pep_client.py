"""A small enforcement-point client: how a service asks OPA and honours held actions.

    pep = EnforcementPoint(opa_url, gavel_url, gavel_token, fail_open=False)
    verdict = pep.decide("gavel_entry/agent_gateway/decision", request)
    if verdict.allowed: ...

It asks OPA with a timeout; when OPA cannot be reached it falls back to the configured rule
(fail-open or fail-closed). When the decision requires approval it holds the action in Gavel
(`POST /api/v1/approvals`), waits for reviewers by long polling, and on approval retries the
same request naming the approval, so that OPA itself allows it, once.
Only httpx and the standard library: it can be copied into a service as it is.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import httpx

APPROVAL_KEY = "gavel_approval"


@dataclass
class Verdict:
    allowed: bool
    status: str  # allowed, denied, unreachable, held, approved, rejected, expired, timed_out
    reasons: list[str] = field(default_factory=list)
    decision_id: str | None = None
    result: dict[str, Any] | None = None


class EnforcementPoint:
    def __init__(self, opa_url: str, gavel_url: str = "", gavel_token: str = "", *, fail_open: bool = False,
                 timeout: float = 2.0, approval_wait: float = 300.0, poll_seconds: float = 30.0):
        self.opa = httpx.Client(base_url=opa_url.rstrip("/"), timeout=timeout)
        headers = {"Authorization": f"Token {gavel_token}"} if gavel_token else {}
        self.gavel = httpx.Client(base_url=gavel_url.rstrip("/"), headers=headers, timeout=poll_seconds + 10)
        self.fail_open = fail_open
        self.approval_wait = approval_wait
        self.poll_seconds = poll_seconds

    def ask_opa(self, path: str, request: Any) -> Verdict:
        try:
            response = self.opa.post(f"/v1/data/{path.strip('/')}", json={"input": request})
            response.raise_for_status()
        except httpx.HTTPError as exc:
            # OPA down or failing: the configured rule decides, and says it did.
            return Verdict(self.fail_open, "unreachable", [f"OPA unreachable ({exc.__class__.__name__}); "
                                                           f"failing {'open' if self.fail_open else 'closed'}"])
        body = response.json()
        result = body.get("result")
        decision_id = body.get("decision_id")
        if not isinstance(result, dict):
            return Verdict(result is True, "allowed" if result is True else "denied", [], decision_id, None)
        if result.get("require_approval"):
            return Verdict(False, "held", list(result.get("reasons", [])), decision_id, result)
        allowed = result.get("allow") is True
        return Verdict(allowed, "allowed" if allowed else "denied", list(result.get("reasons", [])), decision_id,
                       result)

    def hold(self, path: str, request: Any, verdict: Verdict, callback_url: str = "") -> dict[str, Any]:
        body = {"decision_id": verdict.decision_id, "path": path, "input": request, "result": verdict.result}
        if callback_url:
            body["callback_url"] = callback_url
        response = self.gavel.post("/api/v1/approvals", json=body)
        response.raise_for_status()
        return response.json()

    def wait_for_review(self, decision_id: str) -> str:
        """The held action's final status, or "timed_out" after `approval_wait` seconds."""
        deadline = time.monotonic() + self.approval_wait
        while time.monotonic() < deadline:
            wait = max(1, min(self.poll_seconds, deadline - time.monotonic()))
            response = self.gavel.get(f"/api/v1/approvals/{decision_id}", params={"wait": int(wait)})
            if response.status_code != 429:  # 429: too many waits open at once; ask again after a pause
                response.raise_for_status()
                status = response.json()["status"]
                if status != "pending":
                    return status
            # Gavel waits only briefly and says when to ask again.
            pause = float(response.headers.get("Retry-After", "1") or 1)
            time.sleep(max(0.0, min(pause, deadline - time.monotonic())))
        return "timed_out"

    def decide(self, path: str, request: Any, *, wait_for_approval: bool = True) -> Verdict:
        verdict = self.ask_opa(path, request)
        if verdict.status != "held" or not verdict.decision_id:
            return verdict
        self.hold(path, request, verdict)
        if not wait_for_approval:
            return verdict
        status = self.wait_for_review(verdict.decision_id)
        if status != "approved":
            return Verdict(False, status, verdict.reasons, verdict.decision_id, verdict.result)
        retry = self.ask_opa(path, {**request, APPROVAL_KEY: verdict.decision_id})
        if retry.status == "allowed":
            retry.status = "approved"
        return retry
