"""Impact analysis: replay recorded decisions through a candidate version in Gavel's own,
sandboxed OPA server (core/opa/sandbox_server.py), never the fleet's.

The candidate is loaded for evaluation the way explain loads a version (core/opa/evaluation.py):
under a scratch package, beside a harness that reads the policy's own verdict the way the
entrypoint does. Postgres picks the decisions (the newest `last`) and counts the identical ones
together (the same input and recorded answer), each input as the JSON text it is stored as, never
parsed in Python; each distinct input is evaluated once, a chunk of GAVEL_REPLAY_CHUNK inputs per
request (`verdict with input as x` over the chunk's array), GAVEL_REPLAY_WORKERS requests at a
time, so that OPA uses every core (core/opa/batches.py). The scratch modules, and the server,
are gone afterwards.

Recorded decisions are compared with what the *policy* said, not what the entrypoint
finally did: a dry-run `would_deny` was a policy denial, and a denial waived by an
exception was still a denial (its reasons, minus the waived ones, are not compared).
"""
from __future__ import annotations

import heapq
import json
import time
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from datetime import timezone as dt_timezone
from functools import cache

from django.conf import settings
from django.db import connection, transaction
from django.db.models.fields.json import KeyTransform
from django.utils.dateparse import parse_datetime

from core.models import Decision, Outcome
from core.opa import evaluation
from core.opa.batches import MISSING, Batches
from core.opa.client import OpaError
from core.opa.evaluation import Recorded
from core.opa.local import LocalOpa
from core.opa.sandbox_server import NeedsEval, SandboxServer
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
    distinct: int = 0  # distinct inputs among those replayed: each was evaluated once
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
                "examples": self.examples, "round_trips": self.round_trips, "distinct_inputs": self.distinct,
                "seconds": round(self.seconds, 3), "against": self.against or None}


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


# Identical decisions (the same input, and the same recorded answer) are counted together by
# Postgres: each kind with how many there are and its newest few, as examples.
COUNTING_MEMORY = "64MB"  # Postgres's work_mem for the count: 100,000 inputs sort in memory
COUNTED = """
SELECT input_json, outcome, reasons, effective_mode, exception_ids, held = 'true'::jsonb, count(*),
       (array_agg(decision_id ORDER BY rank))[1:<examples>], (array_agg(rank ORDER BY rank))[1:<examples>]
FROM (SELECT picked.*, picked.input::text COLLATE "C" AS input_json,
             row_number() OVER (ORDER BY picked.timestamp DESC, picked.id DESC) AS rank
      FROM (<picked>) AS picked) AS ranked
GROUP BY input_json, outcome, reasons, effective_mode, exception_ids, held
"""


@dataclass(frozen=True)
class Identical:
    """Recorded decisions alike: one input, one recorded answer."""

    recorded: Recorded  # the answer, and the input's JSON text
    count: int
    examples: tuple[tuple[int, str], ...]  # (rank, decision_id) of the newest few: rank 1 is the newest


def counted_decisions(policy, *, last: int, since=None, until=None, decided_by=None) -> list[tuple]:
    """The `last` decisions to replay, counted by Postgres as identical ones: rows of
    (input as JSON text, outcome, reasons, effective_mode, exception_ids, held in dry-run, count,
    newest decision ids, their ranks). The inputs are never parsed in Python."""
    decisions = Decision.objects.filter(policy=policy)
    if decided_by is not None:
        decisions = decisions.filter(version=decided_by)
    if since:
        decisions = decisions.filter(timestamp__gte=since)
    if until:
        decisions = decisions.filter(timestamp__lt=until)
    picked = (decisions.annotate(held=KeyTransform("would_require_approval", "result"))
              .order_by("-timestamp", "-id")
              .values("decision_id", "input", "outcome", "reasons", "effective_mode", "exception_ids", "held",
                      "timestamp", "id")[:last])
    sql, params = picked.query.sql_with_params()
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(f"SET LOCAL work_mem = '{COUNTING_MEMORY}'")  # counted in memory, not on disk
        cursor.execute(COUNTED.replace("<picked>", sql).replace("<examples>", str(EXAMPLES_PER_GROUP)), params)
        return cursor.fetchall()


# --- The candidate side ---------------------------------------------------------------------

# Each request evaluates a whole chunk: the verdict for every input of the array.
RESULTS = "\nresults := {i: v | some i, x in input; v := verdict with input as x}\n"


def _evaluate(client: SandboxServer | LocalOpa, source: str, read: Callable[[], list[tuple]],
              report: ReplayReport, chunk_size: int) -> tuple[list[Identical], list]:
    """Each comparable kind of decision and the candidate's answer to its input (MISSING: undefined).
    The modules are checked (and the server starts) while `read()` reads the rows."""
    alike, slots = [], []
    with evaluation.loaded(client, source, "replay", extra_rules=RESULTS) as scratch:
        with ThreadPoolExecutor(max_workers=1) as pool:
            checking = pool.submit(client.load)
            rows = read()  # on this thread: its connection, its transaction
            checking.result()  # refused here, before anything is evaluated: NeedsEval starts again with opa eval
        with Batches(client.evaluate, scratch.harness.replace(".", "/") + "/results", chunk_size=chunk_size,
                     workers=settings.GAVEL_REPLAY_WORKERS) as batches:
            for input_json, outcome, reasons, mode, exception_ids, held, count, ids, ranks in rows:
                report.selected += count
                answer = "no_input" if input_json in (None, "null") else evaluation.policy_answer(
                    effective_mode=mode, outcome=outcome, reasons=reasons, exception_ids=exception_ids,
                    would_require_approval=held)
                if isinstance(answer, str):
                    report.skipped[answer] = report.skipped.get(answer, 0) + count
                    continue
                alike.append(Identical(Recorded(ids[0], input_json, *answer), count, tuple(zip(ranks, ids))))
                slots.append(batches.add(input_json))
            answers = batches.answers()
            report.round_trips, report.distinct = batches.round_trips, batches.distinct
    return alike, [answers[slot] for slot in slots]


def replay_counted(source: str, read: Callable[[], list[tuple]], *, report: ReplayReport | None = None,
                   chunk_size: int | None = None) -> ReplayReport:
    """The core: evaluate `source` over the inputs of the rows `read()` returns (counted_decisions'
    rows) and count what would change."""
    report = report or ReplayReport()
    read = cache(read)  # once, even when NeedsEval starts again
    chunk_size = chunk_size or settings.GAVEL_REPLAY_CHUNK
    timeout = settings.GAVEL_REPLAY_TIMEOUT_SECONDS
    started = time.perf_counter()
    try:
        try:
            with SandboxServer(timeout=timeout) as server:
                alike, verdicts = _evaluate(server, source, read, report, chunk_size)
        except NeedsEval:  # JSON-schema builtins: `opa eval` enforces allow_net, the server cannot
            with LocalOpa(timeout=timeout) as local:
                alike, verdicts = _evaluate(local, source, read, report, chunk_size)
    except evaluation.CannotLoad as exc:
        raise ReplayRefused(str(exc)) from exc
    except OpaError as exc:
        raise ReplayRefused(f"OPA could not evaluate the candidate: {exc}") from exc
    compare_counted(alike, verdicts, report)
    report.seconds = time.perf_counter() - started
    return report


def replay_records(source: str, records: list[Recorded], *, chunk_size: int | None = None) -> ReplayReport:
    """replay_counted for records held in memory (their inputs as documents), newest first."""
    rows = [(json.dumps(r.input, sort_keys=True), r.outcome, r.reasons or (), "",
             () if r.reasons is not None else (0,), False, 1, [r.decision_id], [rank])  # (0,): reasons not comparable
            for rank, r in enumerate(records, 1)]
    return replay_counted(source, lambda: rows, chunk_size=chunk_size)


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


def compare_counted(alike: Iterable[Identical], verdicts: list, report: ReplayReport) -> ReplayReport:
    """Count the decisions of each kind under the change the candidate's verdict makes to them;
    the examples are the newest decisions of each change."""
    derived: dict[int, tuple[str, tuple[str, ...]]] = {}  # per verdict: kinds with one input share it
    candidates: dict[str, list[tuple[int, str, dict]]] = {key: [] for key in GROUPS}
    for kind, verdict in zip(alike, verdicts, strict=True):
        found = derived.get(id(verdict))
        if found is None:
            outcome, reasons = derive_outcome() if verdict is MISSING else derive_outcome(verdict)
            found = derived[id(verdict)] = (outcome, tuple(sorted(reasons)))
        outcome, reasons = found
        before = kind.recorded
        report.replayed += kind.count
        key = _group(before, outcome, reasons)
        if key is None:
            continue
        report.changes[key] += kind.count
        change = {"before": str(before.outcome), "after": str(outcome), "reasons_before": list(before.reasons or ()),
                  "reasons_after": list(reasons)}
        candidates[key].extend((rank, decision_id, change) for rank, decision_id in kind.examples)
    for key, found in candidates.items():
        report.examples[key] = [{"decision_id": decision_id, **change}
                                for _, decision_id, change in heapq.nsmallest(EXAMPLES_PER_GROUP, found,
                                                                              key=lambda c: c[0])]
    return report


def compare(records: list[Recorded], verdicts: list, report: ReplayReport) -> ReplayReport:
    """compare_counted for records one by one, newest first."""
    alike = [Identical(r, 1, ((rank, r.decision_id),)) for rank, r in enumerate(records, 1)]
    return compare_counted(alike, verdicts, report)


def replay_version(version, *, last=None, since=None, until=None, environment=None) -> ReplayReport:
    """Replay the policy's recent recorded decisions through `version`. With `environment`,
    only the decisions of the version that environment runs: what would change there."""
    window = parse_window(last, since, until)
    running = None
    if environment is not None:
        running = version.policy.active_version_in(environment)
        if running is None:
            raise ReplayRefused(f"{environment} runs no version of {version.policy.name}")
    report = ReplayReport(against=f"{environment} v{running.number}" if running else "")
    return replay_counted(version.source, lambda: counted_decisions(version.policy, **window, decided_by=running),
                          report=report)
