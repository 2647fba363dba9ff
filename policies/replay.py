"""Impact analysis: replay recorded decisions through a candidate version in Gavel's own,
sandboxed OPA (core/opa/local.py: the real `opa eval`, never the fleet's server).

The candidate is loaded for evaluation the way explain loads a version (core/evaluation.py):
under a scratch package, beside a harness that reads the policy's own verdict the way the
entrypoint does. Each query then evaluates a whole chunk
of inputs (`verdict with input as x` over an input array), so 100,000 inputs take about a
hundred round trips, not 100,000. The scratch modules are deleted afterwards.

Recorded decisions are compared with what the *policy* said, not what the entrypoint
finally did: a dry-run `would_deny` was a policy denial, and a denial waived by an
exception was still a denial (its reasons, minus the waived ones, are not compared).
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import datetime
from datetime import timezone as dt_timezone
from typing import Iterable

from django.conf import settings
from django.utils.dateparse import parse_datetime

from core.models import Decision, Outcome
from core.opa import evaluation
from core.opa.client import OpaClient, OpaError
from core.opa.local import LocalOpa
from core.opa.evaluation import Recorded, recorded
from core.outcomes import derive_outcome

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

# Each POST /v1/query evaluates a whole chunk: the verdict for every input of the array.
RESULTS = "\nresults := {i: v | some i, x in input; v := verdict with input as x}\n"


def evaluate(source: str, inputs: list, *, client: OpaClient | LocalOpa, chunk_size: int | None = None) -> tuple[list, int]:
    """The candidate's verdict for each input (_MISSING when undefined), and the round trips taken."""
    chunk_size = chunk_size or settings.GAVEL_REPLAY_CHUNK
    verdicts, round_trips = [], 0
    try:
        with evaluation.loaded(client, source, "replay", extra_rules=RESULTS) as scratch:
            for start in range(0, len(inputs), chunk_size):
                chunk = inputs[start:start + chunk_size]
                rows = client.query(f"results := data.{scratch.harness}.results", chunk)
                round_trips += 1
                answers = rows[0]["results"] if rows else {}
                verdicts.extend(answers.get(str(i), _MISSING) for i in range(len(chunk)))
    except evaluation.CannotLoad as exc:
        raise ReplayRefused(str(exc)) from exc
    except OpaError as exc:
        raise ReplayRefused(f"OPA could not evaluate the candidate: {exc}") from exc
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


def _client() -> LocalOpa:
    # Authors' Rego runs in Gavel's sandbox, not in the fleet's OPA with its secrets and network.
    return LocalOpa(timeout=settings.GAVEL_REPLAY_TIMEOUT_SECONDS)


def replay_records(source: str, records: list[Recorded], *, client: OpaClient | LocalOpa | None = None,
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
