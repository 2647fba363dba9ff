"""Evaluating a policy's own answer in the real OPA, as Gavel's entrypoint reads it: what
replay (policies/replay.py) and explain (audit/explain.py) share.

A version is loaded under a scratch package (only its package line is rewritten, at the
position OPA's parser reports), beside a harness module that reads its verdict with the
entrypoint's own rules and a log filter that keeps these ad-hoc queries off the audit trail.
All three are deleted afterwards.
"""
from __future__ import annotations

import base64
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from ..models import Decision, Outcome
from .cli import parse
from .client import OpaClient, OpaError

# The policy's own answer, in any of the shapes Gavel understands. The entrypoint Gavel
# publishes (rollout/entrypoint.py) uses the same rules, so replay and explain read a
# version exactly as enforcement points get it.
VERDICT_RULES = """# The policy's own answer, in any of the shapes Gavel understands.
verdict := answer if {
	answer := policy.decision
	is_object(answer)
} else := {"allow": answer} if {
	answer := policy.decision
	is_boolean(answer)
} else := {"allow": count(policy.deny) == 0, "reasons": sort(policy.deny)} if {
	is_set(policy.deny)
} else := {"allow": policy.allow == true}"""

HARNESS = """package {harness}

import data.{package} as policy

{verdict_rules}
{extra}"""

# Ad-hoc queries are decision-logged like any other; these would flood the audit trail with
# whole input arrays. OPA drops a logged decision when data.system.log.drop is true.
DROP = """package system.log

drop if contains(input.query, "{harness}")
"""


class CannotLoad(ValueError):
    """The source cannot be loaded under a scratch package."""


def scratch_source(source: str, package: str) -> str:
    """`source` with its package renamed, at the span OPA's parser locates; nothing else changes."""
    try:
        path = parse("candidate.rego", source)["package"]["path"][1:]
    except ValueError as exc:
        raise CannotLoad(str(exc)) from exc
    first, last = path[0]["location"], path[-1]["location"]
    if first["row"] != last["row"]:
        raise CannotLoad("the package line spans several lines")
    lines = source.split("\n")
    line = lines[first["row"] - 1].encode("utf-8")
    end = last["col"] - 1 + len(base64.b64decode(last["text"]))
    lines[first["row"] - 1] = (line[: first["col"] - 1] + package.encode() + line[end:]).decode("utf-8")
    return "\n".join(lines)


@dataclass(frozen=True)
class Scratch:
    package: str  # where the version is loaded
    harness: str  # the package whose `verdict` is the policy's answer
    ids: dict[str, str]  # "drop", "policy", "verdict" -> OPA policy id


@contextmanager
def loaded(client: OpaClient, source: str, purpose: str, *, extra_rules: str = "") -> Iterator[Scratch]:
    """Load `source` for evaluation (`purpose` names the scratch ids, e.g. "replay"), then delete it.
    Raises CannotLoad for a source that cannot be renamed, OpaError when OPA refuses it."""
    token = secrets.token_hex(6)
    package, harness = f"gavel_{purpose}.r{token}", f"gavel_{purpose}.r{token}_harness"
    scratch = Scratch(package, harness, {"drop": f"gavel_{purpose}/{token}_drop", "policy": f"gavel_{purpose}/{token}",
                                         "verdict": f"gavel_{purpose}/{token}_harness"})
    sources = {"drop": DROP.format(harness=harness), "policy": scratch_source(source, package),
               "verdict": HARNESS.format(harness=harness, package=package, verdict_rules=VERDICT_RULES,
                                         extra=extra_rules)}
    try:
        for key in ("drop", "policy", "verdict"):  # the log filter first, the policy before its harness
            client.put_policy(scratch.ids[key], sources[key])
        yield scratch
    finally:
        for policy_id in scratch.ids.values():
            try:
                client.delete_policy(policy_id)
            except OpaError:
                pass  # best effort; a scratch module left behind decides nothing


@dataclass(frozen=True)
class Recorded:
    """A recorded decision as the policy itself answered it."""

    decision_id: str
    input: Any  # the input document, or its JSON text as a replay reads it from the database
    outcome: str
    reasons: tuple[str, ...] | None  # None: the recorded reasons cannot be compared


def policy_answer(*, effective_mode: str, outcome: str, reasons, exception_ids,
                  would_require_approval: Any) -> tuple[str, tuple[str, ...] | None] | str:
    """The policy's own (outcome, reasons) in a recorded decision with an input, or why it cannot
    be compared: the fields recorded() reads, for callers that read rows rather than Decisions."""
    if effective_mode == "off":
        return "mode_off"  # the entrypoint allowed without keeping the policy's answer
    reasons = tuple(sorted(reasons))
    if outcome == Outcome.WOULD_REQUIRE_APPROVAL or would_require_approval is True:
        outcome = Outcome.REQUIRE_APPROVAL
    elif outcome == Outcome.WOULD_DENY:
        outcome = Outcome.DENY
    if exception_ids:
        outcome, reasons = Outcome.DENY, None  # waived reasons are missing from the record
    return outcome, reasons


def recorded(decision: Decision) -> Recorded | str:
    """The policy's own answer in a recorded decision, or why it cannot be compared.

    That is what the *policy* said, not what the entrypoint finally did: a dry-run
    `would_deny` was a policy denial, and a denial waived by an exception was still a denial
    (its reasons, minus the waived ones, cannot be compared)."""
    if decision.input is None:
        return "no_input"
    result = decision.result if isinstance(decision.result, dict) else {}
    answer = policy_answer(effective_mode=decision.effective_mode, outcome=decision.outcome,
                           reasons=decision.reasons, exception_ids=decision.exception_ids,
                           would_require_approval=result.get("would_require_approval"))
    if isinstance(answer, str):
        return answer
    return Recorded(decision.decision_id, decision.input, *answer)
