"""The one way decisions are written: ingest, the factories and benches all come here.

Partitions first (creating one locks the parent table, so it happens before the long
transaction), then each decision once: COPY into a temporary table, then one statement that
claims each id in the registry of stored ids, inserts the claimed rows and counts them into the
rollups, RETURNING them, so a decision OPA delivers twice (a retried batch, two workers racing) is
stored and counted once and we learn exactly which ones were new. A decision id is stored in one
environment only: the same id uploaded again under another environment's token (or labels) is a
copy, not a second decision, and is left out. In the same transaction `decisions_stored` is sent,
which is how features act on new decisions (approvals holds what needs a person) without the
core knowing them.
"""
from __future__ import annotations

import json
import operator
from collections.abc import Iterable
from datetime import datetime

import django.dispatch
from django.db import connection, transaction
from django.utils import timezone

from . import partitions, rollups
from .models import Decision, StoredDecisionId

# Sent inside the storing transaction with `decisions`: the new ones, with their ids.
decisions_stored = django.dispatch.Signal()

# Every stored column but the generated ones (`id` from its sequence, `search` from the text).
COPY_FIELDS = [f for f in Decision._meta.concrete_fields if f.name != "id" and not f.generated]
COPY_COLUMNS = ", ".join(f'"{f.column}"' for f in COPY_FIELDS)
INCOMING_COLUMNS = ", ".join(f'i."{f.column}"' for f in COPY_FIELDS)  # the same, read from the staged rows


# The attributes in COPY_FIELDS order, read in one step; which of them are kept as JSON text.
_COPIED = operator.itemgetter(*[f.attname for f in COPY_FIELDS])
_AS_JSON = [n for n, f in enumerate(COPY_FIELDS) if f.get_internal_type() == "JSONField"]


# Each id is claimed in the registry of stored ids first (one index, whichever partition holds the
# id), then only the claimed rows are stored and counted into the rollups, all in one statement. A
# worker racing on the same id waits for the other's commit, then claims nothing. The earliest of a
# batch's copies wins.
STORE_CLAIMED = (
    f"WITH claimed AS ("
    f" INSERT INTO {StoredDecisionId._meta.db_table} (decision_id, environment, timestamp)"
    f" SELECT DISTINCT ON (decision_id) decision_id, environment, timestamp FROM incoming_decision"
    f" ORDER BY decision_id, timestamp"
    f" ON CONFLICT (decision_id) DO NOTHING RETURNING decision_id, environment, timestamp), "
    f"stored AS ("
    f" INSERT INTO {Decision._meta.db_table} ({COPY_COLUMNS})"
    f" SELECT {INCOMING_COLUMNS} FROM incoming_decision AS i JOIN claimed USING (decision_id, environment, timestamp)"
    f" ON CONFLICT (decision_id, environment, timestamp) DO NOTHING RETURNING id, {rollups.COUNTED_COLUMNS}), "
    + ", ".join(f"counted_{n} AS ({statement})" for n, statement in enumerate(rollups.counting_statements("stored")))
    + " SELECT id, decision_id, environment, timestamp FROM stored")


# JSON text for jsonb: compact, no check for cycles (parsed JSON has none): a quarter less time than json.dumps.
_json_text = json.JSONEncoder(separators=(",", ":"), check_circular=False).encode


def copy_row(decision: Decision, received_at: datetime) -> tuple:
    """The decision's values in COPY_COLUMNS order, as COPY takes them, stamped `received_at` (the
    rows of one batch share the time they were stored)."""
    decision.received_at = received_at
    try:
        values = list(_COPIED(decision.__dict__))
    except KeyError:  # a field not loaded (`defer`): read through the model, which loads it
        values = [getattr(decision, f.attname) for f in COPY_FIELDS]
    for n in _AS_JSON:
        if values[n] is not None:
            values[n] = _json_text(values[n])
    return tuple(values)


def prepare(decisions: Iterable[Decision]) -> None:
    """Create the partitions these decisions need. Call it before a long transaction."""
    partitions.ensure((d.environment, d.timestamp) for d in decisions)


def insert(decisions: list[Decision], prepared: bool = False) -> list[Decision]:
    """Store the decisions not stored before; return the new ones, their ids set. `prepared`: the
    caller made their partitions already (`prepare`, before its own transaction)."""
    if not decisions:
        return []
    if not prepared:
        prepare(decisions)
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(f"CREATE TEMPORARY TABLE IF NOT EXISTS incoming_decision ON COMMIT DELETE ROWS AS "
                       f"SELECT {COPY_COLUMNS} FROM {Decision._meta.db_table} WITH NO DATA")
        received_at = timezone.now()
        with cursor.cursor.copy(f"COPY incoming_decision ({COPY_COLUMNS}) FROM STDIN") as copy:
            for decision in decisions:
                copy.write_row(copy_row(decision, received_at))
        cursor.execute(STORE_CLAIMED)
        ids = {(decision_id, environment, timestamp): pk for pk, decision_id, environment, timestamp in cursor.fetchall()}
        cursor.execute("TRUNCATE incoming_decision")
        fresh = []
        for decision in decisions:
            pk = ids.get((decision.decision_id, decision.environment, decision.timestamp))
            if pk is not None:
                decision.pk, decision._state.adding, decision._state.db = pk, False, "default"
                fresh.append(decision)
        decisions_stored.send(sender=Decision, decisions=fresh)
    return fresh
