"""Impact analysis: replay recorded decisions through a candidate version in the real OPA.

The candidate is loaded under a scratch package (only its package line is rewritten, at
the position OPA's parser reports), next to a small harness module that reads the policy's
own verdict the way the entrypoint does. Each POST /v1/query then evaluates a whole chunk
of inputs (`verdict with input as x` over an input array), so 100,000 inputs take about a
hundred round trips, not 100,000. The scratch modules are deleted afterwards.

Recorded decisions are compared with what the *policy* said, not what the entrypoint
finally did: a dry-run `would_deny` was a policy denial, and a denial waived by an
exception was still a denial (its reasons, minus the waived ones, are not compared).
"""
from __future__ import annotations

import base64
import secrets
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone as dt_timezone
from typing import Any, Iterable

from django.conf import settings
from django.utils.dateparse import parse_datetime

from audit.models import Decision, Outcome
from audit.outcomes import derive_outcome

from .entrypoint import VERDICT_RULES
from .lint import parse
from .opa import OpaClient, OpaError

EXAMPLES_PER_GROUP = 5
GROUPS = {
    "allow_to_deny": "allow → deny",
    "deny_to_allow": "deny → allow",
    "to_approval": "now requires approval",
    "from_approval": "no longer requires approval",
    "reasons_changed": "same outcome, reasons changed",
    "undefined": "to or from undefined",
}
_MISSING = object()


class ReplayRefused(ValueError):
    """A replay that cannot run: a bad window, or OPA refusing the candidate."""


@dataclass(frozen=True)
class Recorded:
    """A recorded decision as the policy itself answered it."""

    decision_id: str
    input: Any
    outcome: str
    reasons: tuple[str, ...] | None  # None: the recorded reasons cannot be compared


@dataclass
class ReplayReport:
    selected: int = 0
    replayed: int = 0
    skipped: dict[str, int] = field(default_factory=dict)
    changes: dict[str, int] = field(default_factory=lambda: {key: 0 for key in GROUPS})
    examples: dict[str, list[dict]] = field(default_factory=lambda: {key: [] for key in GROUPS})
    round_trips: int = 0
    seconds: float = 0.0
    against: str = ""  # "prod v3": only the decisions the version an environment runs made

    @property
    def changed(self) -> int:
        return sum(self.changes.values())

    def groups(self) -> list[dict]:
        return [{"key": key, "label": label, "count": self.changes[key], "examples": self.examples[key]}
                for key, label in GROUPS.items()]

    def as_dict(self) -> dict:
        return {"selected": self.selected, "replayed": self.replayed, "changed": self.changed,
                "unchanged": self.replayed - self.changed, "skipped": self.skipped, "changes": self.changes,
                "examples": self.examples, "round_trips": self.round_trips, "seconds": round(self.seconds, 3),
                "against": self.against or None}


# --- The recorded side ----------------------------------------------------------------------


def recorded(decision: Decision) -> Recorded | str:
    """The policy's own answer in a recorded decision, or why it cannot be compared."""
    if decision.input is None:
        return "no_input"
    if decision.effective_mode == "off":
        return "mode_off"  # the entrypoint allowed without keeping the policy's answer
    result = decision.result if isinstance(decision.result, dict) else {}
    outcome, reasons = decision.outcome, tuple(sorted(decision.reasons))
    if result.get("would_require_approval") is True:
        outcome = Outcome.REQUIRE_APPROVAL
    elif outcome == Outcome.WOULD_DENY:
        outcome = Outcome.DENY
    if decision.exception_ids:
        outcome, reasons = Outcome.DENY, None  # waived reasons are missing from the record
    return Recorded(decision.decision_id, decision.input, outcome, reasons)


def parse_window(last=None, since=None, until=None) -> dict:
    """Validate a replay window from a form, the API or the command line."""
    def moment(value, name):
        if value in (None, ""):
            return None
        parsed = value if isinstance(value, datetime) else parse_datetime(str(value))
        if parsed is None:
            raise ReplayRefused(f"{name} is not a date and time (use ISO 8601, e.g. 2025-01-31T12:00:00Z)")
        return parsed if parsed.tzinfo else parsed.replace(tzinfo=dt_timezone.utc)

    since, until = moment(since, "since"), moment(until, "until")
    if since and until and since >= until:
        raise ReplayRefused("since must be before until")
    limit = settings.GAVEL_REPLAY_MAX_DECISIONS
    if last in (None, ""):
        last = limit if (since or until) else settings.GAVEL_REPLAY_DEFAULT_LAST
    try:
        last = int(last)
    except (TypeError, ValueError):
        raise ReplayRefused("last must be a whole number") from None
    if not 1 <= last <= limit:
        raise ReplayRefused(f"last must be between 1 and {limit}")
    return {"last": last, "since": since, "until": until}


def select_decisions(policy, *, last: int, since=None, until=None, decided_by=None) -> list[Decision]:
    decisions = Decision.objects.filter(policy=policy)
    if decided_by is not None:
        decisions = decisions.filter(version=decided_by)
    if since:
        decisions = decisions.filter(timestamp__gte=since)
    if until:
        decisions = decisions.filter(timestamp__lt=until)
    fields = ("decision_id", "input", "result", "outcome", "reasons", "effective_mode", "exception_ids")
    return list(decisions.order_by("-timestamp", "-id").only(*fields)[:last])


# --- The candidate side ---------------------------------------------------------------------


def scratch_source(source: str, package: str) -> str:
    """`source` with its package renamed, at the span OPA's parser locates; nothing else changes."""
    path = parse("candidate.rego", source)["package"]["path"][1:]
    first, last = path[0]["location"], path[-1]["location"]
    if first["row"] != last["row"]:
        raise ReplayRefused("the package line spans several lines")
    lines = source.split("\n")
    line = lines[first["row"] - 1].encode("utf-8")
    end = last["col"] - 1 + len(base64.b64decode(last["text"]))
    lines[first["row"] - 1] = (line[: first["col"] - 1] + package.encode() + line[end:]).decode("utf-8")
    return "\n".join(lines)


HARNESS = """package {harness}

import data.{package} as policy

{verdict_rules}

results := {{i: v | some i, x in input; v := verdict with input as x}}
"""

# Ad-hoc queries are decision-logged like any other; these would flood the audit trail with
# whole input arrays. OPA drops a logged decision when data.system.log.drop is true.
DROP = """package system.log

drop if contains(input.query, "{harness}")
"""


def evaluate(source: str, inputs: list, *, client: OpaClient, chunk_size: int | None = None) -> tuple[list, int]:
    """The candidate's verdict for each input (_MISSING when undefined), and the round trips taken."""
    token = secrets.token_hex(6)
    package, harness = f"gavel_replay.r{token}", f"gavel_replay.r{token}_harness"
    # In this order: the log filter before anything is queried, the candidate before its harness.
    modules = {f"gavel_replay/{token}_drop": DROP.format(harness=harness),
               f"gavel_replay/{token}": scratch_source(source, package),
               f"gavel_replay/{token}_harness": HARNESS.format(harness=harness, package=package,
                                                                             verdict_rules=VERDICT_RULES)}
    chunk_size = chunk_size or settings.GAVEL_REPLAY_CHUNK
    verdicts, round_trips = [], 0
    try:
        for policy_id, module in modules.items():
            client.put_policy(policy_id, module)
        for start in range(0, len(inputs), chunk_size):
            chunk = inputs[start:start + chunk_size]
            rows = client.query(f"results := data.{harness}.results", chunk)
            round_trips += 1
            answers = rows[0]["results"] if rows else {}
            verdicts.extend(answers.get(str(i), _MISSING) for i in range(len(chunk)))
    except OpaError as exc:
        raise ReplayRefused(f"OPA could not evaluate the candidate: {exc}") from exc
    finally:
        for policy_id in modules:
            try:
                client.delete_policy(policy_id)
            except OpaError:
                pass  # best effort; a scratch module left behind decides nothing
    return verdicts, round_trips


def _group(before: Recorded, outcome: str, reasons: tuple[str, ...]) -> str | None:
    was = before.outcome
    if was == outcome:
        if outcome != Outcome.ALLOW and before.reasons is not None and before.reasons != reasons:
            return "reasons_changed"
        return None
    if Outcome.UNDEFINED in (was, outcome):
        return "undefined"
    if outcome == Outcome.REQUIRE_APPROVAL:
        return "to_approval"
    if was == Outcome.REQUIRE_APPROVAL:
        return "from_approval"
    return "allow_to_deny" if outcome == Outcome.DENY else "deny_to_allow"


def compare(records: Iterable[Recorded], verdicts: list, report: ReplayReport) -> ReplayReport:
    for before, verdict in zip(records, verdicts, strict=True):
        outcome, reasons = derive_outcome() if verdict is _MISSING else derive_outcome(verdict)
        reasons = tuple(sorted(reasons))
        report.replayed += 1
        group = _group(before, outcome, reasons)
        if group is None:
            continue
        report.changes[group] += 1
        if len(report.examples[group]) < EXAMPLES_PER_GROUP:
            report.examples[group].append({
                "decision_id": before.decision_id, "before": str(before.outcome), "after": str(outcome),
                "reasons_before": list(before.reasons or ()), "reasons_after": list(reasons),
            })
    return report


def _client() -> OpaClient:
    # A longer timeout than publishing's: one round trip evaluates a whole chunk.
    return OpaClient(settings.OPA_URL, token=settings.GAVEL_OPA_TOKEN, timeout=settings.GAVEL_REPLAY_TIMEOUT_SECONDS)


def replay_records(source: str, records: list[Recorded], *, client: OpaClient | None = None,
                   chunk_size: int | None = None, report: ReplayReport | None = None) -> ReplayReport:
    """The core: evaluate `source` over the records' inputs and count what would change."""
    report = report or ReplayReport(selected=len(records))
    started = time.perf_counter()
    if client is None:
        with _client() as client:
            verdicts, report.round_trips = evaluate(source, [r.input for r in records], client=client,
                                                    chunk_size=chunk_size)
    else:
        verdicts, report.round_trips = evaluate(source, [r.input for r in records], client=client,
                                                chunk_size=chunk_size)
    compare(records, verdicts, report)
    report.seconds = time.perf_counter() - started
    return report


def replay_version(version, *, last=None, since=None, until=None, environment=None) -> ReplayReport:
    """Replay the policy's recent recorded decisions through `version`. With `environment`,
    only the decisions of the version that environment runs: what would change there."""
    window = parse_window(last, since, until)
    running = None
    if environment is not None:
        running = version.policy.active_version_in(environment)
        if running is None:
            raise ReplayRefused(f"{environment} runs no version of {version.policy.name}")
    decisions = select_decisions(version.policy, **window, decided_by=running)
    report = ReplayReport(selected=len(decisions), against=f"{environment} v{running.number}" if running else "")
    records = []
    for decision in decisions:
        found = recorded(decision)
        if isinstance(found, str):
            report.skipped[found] = report.skipped.get(found, 0) + 1
        else:
            records.append(found)
    return replay_records(version.source, records, report=report)
