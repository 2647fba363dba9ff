#!/usr/bin/env python
"""Every main page and the decisions API, on the table the last audit_scale run left (10M rows).

    .venv/bin/python scripts/stack.py exec --profile bench -- .venv/bin/python bench/pages_at_scale.py

A page that reads the decision table without an index it can use is fine in tests and takes
seconds here (the ingest page took 4.1 s a refresh before it read the batch table instead). Each
page is fetched through Django's test client as a user with every role, best of five, with its
query count and its slowest query; the baseline, in the same run, is the login page, which reads
no decisions. Beside the decisions it adds what a busy deployment also holds (`populate`): a held
action for each decision that needed approval, a day of staged batches from a fleet, and policy
exceptions. Figures go to bench/results/pages_at_scale.md. Leaves the database as it was.
"""
import os
import platform
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import audit_scale as scale  # noqa: E402  (it sets up Django on gavel_bench)

from django.conf import settings  # noqa: E402
from django.contrib.auth import get_user_model  # noqa: E402
from django.db import connection  # noqa: E402
from django.http import QueryDict  # noqa: E402
from django.test import Client  # noqa: E402
from django.test.utils import CaptureQueriesContext  # noqa: E402

from activity import entries  # noqa: E402
from activity.filters import ActivityFilter  # noqa: E402
from audit.pagination import COUNT_LIMIT, Place  # noqa: E402
from approvals.models import HeldAction  # noqa: E402
from core.display import decision_ids  # noqa: E402
from core.models import Decision, LogBatch  # noqa: E402
from fleet.models import Environment  # noqa: E402
from policies.models import Policy  # noqa: E402
from rollout.models import PolicyException  # noqa: E402

RESULTS = scale.ROOT / "bench" / "results" / "pages_at_scale.md"
REPEAT = 5
SLOW_MS = 1000
# A fleet of 8 OPAs uploading every 5 s: a day of staged batches, which Gavel keeps for 24 hours.
BATCHES_A_DAY, FAILED_BATCHES = 8 * 24 * 3600 // 5, 20
EXCEPTIONS, ACTIVE_EXCEPTIONS = 2_000, 200

# A held action for each decision that was held, as ingest makes them: the last day's still
# pending, the older ones approved, rejected or expired.
HELD_SQL = """
INSERT INTO audit_heldaction (decision_id, logged_decision_id, policy_id, path, input, reasons, requester, risk,
    approvals_required, status, created_from, callback_url, created_at, expires_at, decided_at, consumed_by_decision)
SELECT d.decision_id, d.id, d.policy_id, d.path, d.input, d.reasons, d."user", 1 + d.id %% 5, 1,
    CASE WHEN d.timestamp > %(day_ago)s THEN 'pending'
         ELSE (ARRAY['approved', 'rejected', 'expired'])[1 + d.id %% 3] END,
    'decision log', '', d.timestamp, d.timestamp + interval '1 day',
    CASE WHEN d.timestamp > %(day_ago)s THEN NULL ELSE d.timestamp + interval '1 hour' END, ''
FROM audit_decision d WHERE d.outcome = 'require_approval'
ON CONFLICT (decision_id) DO NOTHING
"""

BATCHES_SQL = """
INSERT INTO audit_logbatch (received_at, body_gz, event_count, remote_addr, status, stored_at, stored_count,
    duplicate_count, attempts, failure)
SELECT %(now)s - n * interval '5 seconds' / 8, '\\x1f8b'::bytea, 20, ('10.0.0.' || n %% 8)::inet,
    CASE WHEN n < %(failed)s THEN 'failed' ELSE 'stored' END,
    %(now)s - n * interval '5 seconds' / 8 + interval '1 second',
    CASE WHEN n < %(failed)s THEN 0 ELSE 20 END, 0, CASE WHEN n < %(failed)s THEN 3 ELSE 0 END,
    CASE WHEN n < %(failed)s THEN 'bench: a batch that could not be stored' ELSE '' END
FROM generate_series(1, %(count)s) AS n
"""


def pages() -> list[str]:
    newest = Decision.objects.order_by("-timestamp").values("decision_id", "user").first()
    oldest = Decision.objects.order_by("timestamp").values("decision_id").first()
    policy = Policy.objects.order_by("name").first()
    version = policy.latest_version.number
    environment = Environment.objects.order_by("name").first()
    held = HeldAction.objects.filter(status=HeldAction.Status.PENDING).values("decision_id", "requester").first()
    # Where the counted pages end: reading on after the newest COUNT_LIMIT decisions and log entries.
    deep = Place.of(Decision.objects.order_by("-timestamp", "-id").only("timestamp")[COUNT_LIMIT])
    entry = "{}:{}".format(*ActivityFilter(QueryDict("machines=on")).keys()[COUNT_LIMIT:COUNT_LIMIT + 1][0])
    return [
        "/", "/audit/", f"/audit/?before={deep}", "/audit/?outcome=deny", f"/audit/?user={newest['user']}", "/audit/?q=budget",
        f"/audit/?decision_id={oldest['decision_id']}",
        f"/audit/{decision_ids.to_url(newest['decision_id'])}/", f"/audit/{decision_ids.to_url(oldest['decision_id'])}/",
        "/audit/dashboard/", "/audit/dashboard/?range=30d", "/audit/dashboard/?range=30d&outcome=deny",
        "/audit/ingest/", "/audit/alerts/", "/audit/exports/",
        "/approvals/", "/approvals/?status=approved", f"/approvals/?requester={held['requester']}",
        f"/approvals/{decision_ids.to_url(held['decision_id'])}/", "/approvals/export.csv?status=pending",
        "/policies/",
        f"/policies/{policy.name}/", f"/policies/{policy.name}/v{version}/",
        f"/policies/{policy.name}/v{version}/summary/", f"/policies/{policy.name}/v{version}/evidence/",
        "/environments/", "/activity/", "/activity/?machines=on",
        # One person's changes among the enforcement points' (the bench's own user made few).
        "/activity/?machines=on&actor=bench-pages", f"/activity/?machines=on&before={entry}",
        "/exceptions/", "/rollout/",
        f"/rollout/{environment.name}/{policy.name}/",
        # The rollout page's preview (htmx, POST): the proposal replayed over the last 24 hours.
        ("POST", f"/rollout/{environment.name}/{policy.name}/preview/",
         {"mode": "enforce", "enforce_percentage": 25, "user_field": "user.id", "agent_field": "agent.id"}),
        "/api/v1/decisions/", "/api/v1/decisions/?outcome=deny", f"/api/v1/decisions/?decision_id={oldest['decision_id']}",
        f"/api/v1/decisions/?before={deep}",
        f"/api/v1/decisions/{decision_ids.to_url(newest['decision_id'])}/", "/api/v1/activity/?machines=true",
    ]


def populate(user) -> dict[str, int]:
    """Add held actions, staged batches and exceptions; the first ids of each, for `unpopulate`."""
    first = {"held": _next_id(HeldAction), "batch": _next_id(LogBatch), "exception": _next_id(PolicyException)}
    now = datetime.now(UTC)
    with connection.cursor() as cursor:
        cursor.execute(HELD_SQL, {"day_ago": now - timedelta(days=1)})
        cursor.execute(BATCHES_SQL, {"now": now, "count": BATCHES_A_DAY, "failed": FAILED_BATCHES})
    pairs = [(policy, environment) for policy in Policy.objects.all() for environment in Environment.objects.all()]
    PolicyException.objects.bulk_create(PolicyException(
        policy=pairs[n % len(pairs)][0], environment=pairs[n % len(pairs)][1], reason_contains="token budget",
        match=[{"field": "user.id", "value": f"u-{n}"}], justification="bench", ticket=f"BENCH-{n}",
        requested_by=user, approved_by=user, approved_at=now,
        expires_at=now + timedelta(days=7) if n < ACTIVE_EXCEPTIONS else now - timedelta(days=n % 30 + 1),
    ) for n in range(EXCEPTIONS))
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE audit_heldaction, audit_logbatch, policies_policyexception")
    return first


def unpopulate(first: dict[str, int]) -> None:
    PolicyException.objects.filter(pk__gte=first["exception"]).delete()
    LogBatch.objects.filter(pk__gte=first["batch"]).delete()
    HeldAction.objects.filter(pk__gte=first["held"]).delete()


def _next_id(model) -> int:
    return (model.objects.order_by("-pk").values_list("pk", flat=True).first() or 0) + 1


def fetch(client: Client, page) -> tuple[int, float, int, float]:
    """(status, best ms, queries, slowest query ms) of `page`: a URL, or ("POST", url, data)."""
    method, url, data = page if isinstance(page, tuple) else ("GET", page, None)
    send = client.post if method == "POST" else client.get
    best, status, queries = float("inf"), 0, []
    for _ in range(REPEAT):
        with CaptureQueriesContext(connection) as captured:
            started = time.perf_counter()
            response = send(url, data)
            if response.streaming:  # an export: its cost is in the rows it streams, read here
                b"".join(response.streaming_content)
            status, elapsed = response.status_code, time.perf_counter() - started
        if elapsed < best:
            best, queries = elapsed, captured.captured_queries
    slowest = max((float(q["time"]) for q in queries), default=0.0)
    return status, best * 1000, len(queries), slowest * 1000


def main() -> None:
    scale.migrated()
    rows = Decision.objects.count() if Decision.objects.exists() else 0
    if rows < 100_000:
        sys.exit(f"gavel_bench holds {rows:,} decisions: run bench/audit_scale.py first")
    settings.ALLOWED_HOSTS = ["*"]
    load = os.getloadavg()
    user = get_user_model().objects.create_superuser("bench-pages", "bench@gavel.invalid", None)
    first = populate(user)
    held, batches = HeldAction.objects.count(), LogBatch.objects.count()
    # The activity log is append-only and every run adds its held actions' creation and deletion to
    # it: a rerun on the same database meets a longer log, and the log's pages grow with it.
    logged = entries.log().count()
    try:
        _, baseline_ms, _, _ = fetch(Client(), "/login/")
        client = Client()
        client.force_login(user)
        measured = [(page if isinstance(page, str) else f"{page[0]} {page[1]}", *fetch(client, page))
                    for page in pages()]
    finally:
        unpopulate(first)
        user.delete()
    slow = [url for url, status, ms, *_ in measured if ms > SLOW_MS or status != 200]
    lines = [
        "# Pages at scale: every main page on the audit table audit_scale leaves", "",
        "`.venv/bin/python scripts/stack.py exec --profile bench -- .venv/bin/python bench/pages_at_scale.py`", "",
        f"Run {datetime.now(UTC):%Y-%m-%d %H:%M} UTC on {platform.node()}: {os.cpu_count()} cores, Linux "
        f"{platform.release()}, Python {platform.python_version()}; {rows:,} decisions in the table, "
        f"{batches:,} staged batches, {held:,} held actions, {EXCEPTIONS:,} exceptions ({ACTIVE_EXCEPTIONS} active), "
        f"{logged:,} entries in the activity log; "
        f"load average "
        f"{load[0]:.1f} / {load[1]:.1f} / {load[2]:.1f} before. The machine is shared: compare with the baseline.", "",
        f"Each page as a user with every role, best of {REPEAT}, through Django's test client (no network, no "
        f"browser). **Baseline**: the login page, which reads no decisions: {baseline_ms:.1f} ms.", "",
        "| page | status | ms | x login page | queries | slowest query, ms |", "| --- | --- | --- | --- | --- | --- |",
        *(f"| `{url}` | {status} | {ms:.1f} | {ms / baseline_ms:.1f}x | {count} | {slowest:.1f} |"
          for url, status, ms, count, slowest in measured), "",
        (f"Over {SLOW_MS:,} ms or not 200: {', '.join(f'`{url}`' for url in slow)}." if slow
         else f"Every page answered 200 within {SLOW_MS:,} ms."),
    ]
    RESULTS.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
