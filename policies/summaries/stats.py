"""The live side of a summary: how the policy decided over the last days, from the audit trail."""
from __future__ import annotations

import re
from collections import Counter
from datetime import timedelta

from django.utils import timezone

from core.models import Decision, Outcome
from policies.summaries.summary import all_rules

SAMPLE_LIMIT = 50_000  # decisions read per page view; the rate is exact, reasons beyond this are not counted


def _regex(template: str | None):
    if not template:
        return None
    pieces = re.split(r"(%[-+# 0-9.]*[a-zA-Z%])", template)
    return re.compile("".join(".*" if re.fullmatch(r"%[-+# 0-9.]*[a-zA-Z]", p) else re.escape(p)
                              for p in pieces if p != "%%"), re.DOTALL)


def recent_activity(policy, summary: dict | None = None, days: int = 7) -> dict:
    """Decisions for `policy` in the last `days`: counts, deny rate, top reasons, and per rule
    (when a summary is given) how many reasons match that rule's message.

    {"days", "total", "outcomes": {outcome: n}, "deny_rate": float | None, "deny_rate_text": "12.5%",
     "top_reasons": [{"reason", "count"}] (of denials), "by_rule": {anchor: n}}
    """
    from django.db.models import Count

    since = timezone.now() - timedelta(days=days)
    decisions = Decision.objects.filter(policy=policy, timestamp__gte=since)
    outcomes = {row["outcome"]: row["n"] for row in decisions.values("outcome").annotate(n=Count("id"))}
    total = sum(outcomes.values())
    reasons, denials = Counter(), Counter()  # every reason (per rule hits), and the reasons of denials
    rows = decisions.exclude(reasons=[]).values_list("reasons", "outcome")[:SAMPLE_LIMIT]
    for row, outcome in rows:
        reasons.update(row)
        if outcome == Outcome.DENY:
            denials.update(row)
    by_rule = {}
    for record in all_rules(summary) if summary else []:
        pattern = _regex((record.get("message") or {}).get("template"))
        if pattern is not None:
            by_rule[record["anchor"]] = sum(n for reason, n in reasons.items() if pattern.fullmatch(reason))
    rate = (outcomes.get(Outcome.DENY, 0) / total) if total else None
    return {
        "days": days, "total": total, "outcomes": outcomes, "deny_rate": rate,
        "deny_rate_text": f"{rate:.1%}" if rate is not None else "",
        # shown under "N % were denials": only denials' reasons, not approval holds
        "top_reasons": [{"reason": r, "count": n} for r, n in denials.most_common(5)],
        "by_rule": by_rule,
    }


def with_activity(summary: dict, activity: dict) -> dict:
    """A copy of `summary` whose grouped rules carry `hits`: how often their message was a reason."""
    import copy

    shown = copy.deepcopy(summary)
    for group in shown["groups"]:
        for record in group["rules"]:
            record["hits"] = activity["by_rule"].get(record["anchor"])
    return shown
