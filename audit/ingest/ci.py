"""Decisions a CI check made (checks/, `gavel check`), stored beside OPA's own.

A check's verdicts arrive here as decision-log events, as OPA would report them, so they go
through the same contract, masking, facts and version lookup as every logged decision, and are
written by core/store.py, the one write path. They are marked `source=ci` in their labels, with
the pipeline's commit, branch and job, and filed under the instance `gavel-ci`, so auditors find
them beside runtime decisions (`instance=gavel-ci`, or the commit in the full-text search).
"""
from __future__ import annotations

from typing import Any

from core import store
from core.models import CI_INSTANCE, CI_SOURCE, Decision

from .. import masking
from .rows import decision_from_event
from .versions import VersionResolver

# The labels whose values the full-text search finds (`q=<commit>`).
SEARCHABLE_LABELS = ("commit", "branch", "file", "pipeline", "job_url")


def store_ci_decisions(events: list[dict[str, Any]], environment: str) -> list[Decision]:
    """Store a check's events (decision_id, timestamp, path, input, result, labels) as decisions
    of `environment`; returns the stored ones."""
    resolver, mask_rules = VersionResolver(), masking.rules()
    rows = []
    for event in events:
        event = {**event, "labels": {**event.get("labels", {}), "source": CI_SOURCE, "environment": environment,
                                     "instance": CI_INSTANCE}}
        decision = decision_from_event(event, resolver, None, mask_rules)
        searchable = [decision.labels.get(name, "") for name in SEARCHABLE_LABELS]
        decision.search_text = "\n".join(filter(None, [decision.search_text, *searchable]))
        rows.append(decision)
    return store.insert(rows)
