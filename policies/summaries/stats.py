"""The live side of a summary: how the policy decided over the last days, from the audit trail."""
from __future__ import annotations

import re
from datetime import timedelta

from django.db.models import Q, Sum
from django.utils import timezone

from core import rollups
from core.models import DecisionRollup, Outcome, ReasonRollup
from policies.summaries.summary import all_rules

REASON_LIMIT = 5_000  # distinct reasons matched against the rules' messages per page view


def _regex(template: str | None):
    if not template:
        return None
    pieces = re.split(r"(%[-+# 0-9.]*[a-zA-Z%])", template)
    return re.compile("".join(".*" if re.fullmatch(r"%[-+# 0-9.]*[a-zA-Z]", p) else re.escape(p)
                              for p in pieces if p != "%%"), re.DOTALL)


def recent_activity(policy, summary: dict | None = None, days: int = 7) -> dict:
    """Decisions for `policy` in the last `days` (from the minute): counts, deny rate, top reasons,
    and per rule (when a summary is given) how many reasons match that rule's message. Read from
    the rollups, which count them exactly whatever the traffic; rule hits look at the REASON_LIMIT
    most frequent reasons (a policy that echoes its input into reasons has no end of them).

    {"days", "total", "outcomes": {outcome: n}, "deny_rate": float | None, "deny_rate_text": "12.5%",
     "top_reasons": [{"reason", "count"}] (of denials), "by_rule": {anchor: n}}
    """
    since = (timezone.now() - timedelta(days=days)).replace(second=0, microsecond=0)
    where = rollups.covering(since, None) & Q(policy=policy)
    counted = DecisionRollup.objects.filter(where).order_by()
    outcomes = dict(counted.values_list("outcome").annotate(n=Sum("decisions")))
    total = sum(outcomes.values())
    reasons = ReasonRollup.objects.filter(where).order_by().values("reason").annotate(n=Sum("decisions"))
    # shown under "N % were denials": only denials' reasons, not approval holds
    denials = reasons.filter(outcome=Outcome.DENY).order_by("-n", "reason")[:5]
    by_rule = {}
    if summary:
        frequent = list(reasons.order_by("-n", "reason").values_list("reason", "n")[:REASON_LIMIT])
        for record in all_rules(summary):
            pattern = _regex((record.get("message") or {}).get("template"))
            if pattern is not None:
                by_rule[record["anchor"]] = sum(n for reason, n in frequent if pattern.fullmatch(reason))
    rate = (outcomes.get(Outcome.DENY, 0) / total) if total else None
    return {
        "days": days, "total": total, "outcomes": outcomes, "deny_rate": rate,
        "deny_rate_text": f"{rate:.1%}" if rate is not None else "",
        "top_reasons": [{"reason": row["reason"], "count": row["n"]} for row in denials],
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
