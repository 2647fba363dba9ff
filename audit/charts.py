"""The audit dashboard's charts, built with plotly from the same filtered queryset as the search.

Every figure's points carry, in `customdata`, the search URL that lists the decisions behind
them, so a click on a bar opens exactly those decisions. Aggregates run in Postgres, on the
per-minute rollups when the filters are ones the rollups are counted by (rollups.py), else
on the filtered decisions themselves: both sources answer the same questions.
"""
from __future__ import annotations

import html
import json
from datetime import timedelta

import plotly.graph_objects as go
from django.core.exceptions import ValidationError
from django.db.models import Aggregate, Count, F, FloatField, Func, Max, Min, Q, Sum
from django.db.models.functions import TruncHour, TruncMinute
from django_filters.fields import IsoDateTimeField

from core import rollups
from core.models import DENIED_OUTCOMES as DENIED
from core.models import DecisionRollup, LatencyRollup, Outcome, ReasonRollup

from .filters import DENIED as DENIED_FILTER
from .filters import search_url

COLORS = {Outcome.ALLOW: "#12b76a", Outcome.DENY: "#d92d20", Outcome.WOULD_DENY: "#f79009",
          Outcome.REQUIRE_APPROVAL: "#7a5af8", Outcome.WOULD_REQUIRE_APPROVAL: "#b692f6", Outcome.UNDEFINED: "#98a2b3"}
LAYOUT = dict(margin=dict(l=50, r=20, t=10, b=40), height=300, legend=dict(orientation="h", y=-0.2),
              paper_bgcolor="white", plot_bgcolor="white", font=dict(family="system-ui, sans-serif", size=12))


def label(text: str, limit: int) -> str:
    """Decision text as a chart label. Plotly renders a subset of HTML in labels (<b>, <a href>,
    entities), and reasons come from outside: escaped, they show as the text they are."""
    return html.escape(text[:limit], quote=False)


def labels(texts: list[str], limit: int) -> list[str]:
    """Labels for a category axis, one per text. Plotly draws equal labels as one bar, so two
    reasons alike in their first `limit` characters are numbered apart, not added together."""
    seen: dict[str, int] = {}
    out = []
    for text in texts:
        shown = label(text, limit) + ("…" if len(text) > limit else "")
        seen[shown] = seen.get(shown, 0) + 1
        out.append(shown if seen[shown] == 1 else f"{shown} ({seen[shown]})")
    return out


class Unnest(Func):
    function = "unnest"


def bucket_search(base_query: dict, start, step: timedelta, **extra) -> str:
    """The search for one time bucket, kept inside the page's own time range: a bucket the
    page's `since` or `until` cuts through counted only the decisions inside both."""
    since, until = start, start + step
    field = IsoDateTimeField(required=False)
    try:
        lower, upper = (field.clean(base_query.get(name)) for name in ("since", "until"))
    except ValidationError:  # the page's filter was invalid, so the charts are empty anyway
        lower = upper = None
    since, until = max(since, lower) if lower else since, min(until, upper) if upper else until
    return search_url(base_query, since=since.isoformat(), until=until.isoformat(), **extra)


def denied_search(base_query: dict, **extra) -> str:
    """The search for denials behind a deny chart's point: any denial unless the page already
    narrowed the outcome (then the chart counted only that outcome, and so does the link)."""
    outcome = base_query.get("outcome") or DENIED_FILTER
    return search_url(base_query, outcome=outcome, **extra)


class Percentile(Aggregate):
    """Postgres's percentile_cont(fraction) WITHIN GROUP (ORDER BY expression)."""

    function = "percentile_cont"
    template = "%(function)s(%(fraction)s) WITHIN GROUP (ORDER BY %(expressions)s)"

    def __init__(self, expression, fraction: float, **extra):
        super().__init__(expression, fraction=float(fraction), **extra)


MINUTE, HOUR = timedelta(minutes=1), timedelta(hours=1)


class RawRows:
    """Chart data counted over the filtered decisions themselves."""

    def __init__(self, decisions):
        self.decisions = decisions.order_by()  # the default ordering would leak into GROUP BY

    @staticmethod
    def trunc(step):
        return TruncMinute("timestamp") if step == MINUTE else TruncHour("timestamp")

    def total(self) -> int:
        return self.decisions.count()

    def span(self):
        return self.decisions.aggregate(first=Min("timestamp"), last=Max("timestamp"))

    def counts(self, step, outcomes=None):
        rows = self.decisions if outcomes is None else self.decisions.filter(outcome__in=outcomes)
        return list(rows.annotate(bucket=self.trunc(step)).values("bucket", "outcome").annotate(n=Count("id"))
                    .order_by("bucket"))

    def reasons(self, outcomes, by_version=False, limit=None):
        rows = self.decisions.filter(outcome__in=outcomes).annotate(reason=Unnest(F("reasons")))
        if by_version:
            return list(rows.filter(version__isnull=False).values("policy__name", "version__number", "reason")
                        .annotate(n=Count("id")))
        return list(rows.values("reason").annotate(n=Count("id")).order_by("-n", "reason")[:limit])

    def latency(self, step):
        return list(self.decisions.filter(latency_ns__isnull=False).annotate(bucket=self.trunc(step))
                    .values("bucket").annotate(
                        **{f"p{p}": Percentile(F("latency_ns"), p / 100, output_field=FloatField())
                           for p in (50, 95, 99)}).order_by("bucket"))


class RolledUp:
    """The same chart data, summed from the rollups (filters: see ROLLUP_FILTERS). Hour rows
    serve hourly charts and, when the time filters fall on whole hours, totals too."""

    def __init__(self, where: Q, whole_hours: bool):
        self.where = where
        self.whole_hours = whole_hours

    def rows(self, model, step=HOUR):
        """Hour rows when they answer exactly (an hourly step or none, bounds on whole hours), else minutes."""
        hourly = step == HOUR and self.whole_hours
        granularity = DecisionRollup.Granularity.HOUR if hourly else DecisionRollup.Granularity.MINUTE
        rows = model.objects.filter(self.where, granularity=granularity)
        return rows.annotate(bucket=F("period") if hourly or step == MINUTE else TruncHour("period"))

    def total(self) -> int:
        return self.rows(DecisionRollup).aggregate(n=Sum("decisions"))["n"] or 0

    def span(self):
        minutes = self.rows(DecisionRollup, MINUTE)
        return {"first": minutes.order_by("period").values_list("period", flat=True).first(),
                "last": minutes.order_by("-period").values_list("period", flat=True).first()}

    def counts(self, step, outcomes=None):
        rows = self.rows(DecisionRollup, step)
        if outcomes is not None:
            rows = rows.filter(outcome__in=outcomes)
        return list(rows.values("bucket", "outcome").annotate(n=Sum("decisions")).order_by("bucket"))

    def reasons(self, outcomes, by_version=False, limit=None):
        rows = self.rows(ReasonRollup).filter(outcome__in=outcomes)
        if by_version:
            return list(rows.filter(version__isnull=False).values("policy__name", "version__number", "reason")
                        .annotate(n=Sum("decisions")))
        return list(rows.values("reason").annotate(n=Sum("decisions")).order_by("-n", "reason")[:limit])

    def latency(self, step):
        histograms: dict = {}
        for row in self.rows(LatencyRollup, step).values("bucket", "latency_bucket").annotate(n=Sum("decisions")):
            histograms.setdefault(row["bucket"], {})[row["latency_bucket"]] = row["n"]
        found = []
        for period in sorted(histograms):
            values = rollups.percentiles(histograms[period], (0.5, 0.95, 0.99))
            found.append({"bucket": period, "p50": values[0.5], "p95": values[0.95], "p99": values[0.99]})
        return found


# Search filters the rollups are counted by, and the rollup lookup each one becomes.
ROLLUP_FILTERS = {"since": "period__gte", "until": "period__lt", "outcome": "outcome", "policy": "policy",
                  "version": "version__number", "environment": "environment", "effective_mode": "effective_mode"}


def source_for(filterset):
    """Rollups when every active filter is one they are counted by (times on whole minutes), else raw rows."""
    lookups, whole_hours = {}, True
    for name, value in filterset.form.cleaned_data.items():
        if value in (None, "", [], ()):
            continue
        if name not in ROLLUP_FILTERS:
            return RawRows(filterset.qs)
        if name in ("since", "until"):
            if value.second or value.microsecond:
                return RawRows(filterset.qs)
            whole_hours = whole_hours and value.minute == 0
        if name == "outcome" and value == DENIED_FILTER:
            lookups["outcome__in"] = DENIED
        else:
            lookups[ROLLUP_FILTERS[name]] = value
    return RolledUp(Q(**lookups), whole_hours)


def _bucket(source):
    """Minutes for a short range, hours otherwise, so a chart has a readable number of bars."""
    span = source.span()
    if span["first"] and span["last"] - span["first"] <= timedelta(hours=6):
        return MINUTE
    return HOUR


def time_axis(figure: go.Figure, step: timedelta, buckets) -> go.Figure:
    """Whole minutes (or hours) on a time axis. Left alone, Plotly ticks a chart of one or two
    buckets in fractions of a second ("13:16:00.0002")."""
    if buckets:
        first, last = min(buckets), max(buckets)
        if last - first < 6 * step:
            figure.update_xaxes(range=[first - step, last + step], dtick=step.total_seconds() * 1000)
    return figure.update_xaxes(tickformat="%H:%M" if step == MINUTE else "%b %d, %H:%M")


def volume(source, base_query: dict) -> go.Figure:
    """Decisions per time bucket by outcome, with the deny rate (enforced and dry-run) on top."""
    step = _bucket(source)
    rows = source.counts(step)
    by_outcome: dict[str, dict] = {}
    totals: dict = {}
    denied: dict = {}
    for row in rows:
        by_outcome.setdefault(row["outcome"], {})[row["bucket"]] = row["n"]
        totals[row["bucket"]] = totals.get(row["bucket"], 0) + row["n"]
        if row["outcome"] in DENIED:
            denied[row["bucket"]] = denied.get(row["bucket"], 0) + row["n"]
    figure = go.Figure()
    for outcome, counts in by_outcome.items():
        buckets = sorted(counts)
        figure.add_bar(
            x=buckets, y=[counts[b] for b in buckets], name=Outcome(outcome).label,
            marker_color=COLORS.get(outcome),
            customdata=[bucket_search(base_query, b, step, outcome=outcome) for b in buckets],
        )
    buckets = sorted(totals)
    figure.add_scatter(x=buckets, y=[100 * denied.get(b, 0) / totals[b] for b in buckets], name="Deny rate %",
                       yaxis="y2", mode="lines+markers", line=dict(color="#101828"))
    figure.update_layout(barmode="stack", yaxis=dict(title="decisions"),
                         yaxis2=dict(title="deny rate %", overlaying="y", side="right", range=[0, 100]), **LAYOUT)
    return time_axis(figure, step, buckets)


def top_deny_reasons(source, base_query: dict, limit: int = 10) -> go.Figure:
    rows = source.reasons(DENIED, limit=limit)[::-1]  # largest at the top of a horizontal bar chart
    figure = go.Figure(go.Bar(
        x=[r["n"] for r in rows], y=labels([r["reason"] for r in rows], 80), orientation="h", marker_color="#d92d20",
        customdata=[denied_search(base_query, reason=r["reason"]) for r in rows],
        hovertemplate="%{x} decisions<extra></extra>",
    ))
    figure.update_layout(**{**LAYOUT, "height": max(240, 32 * len(rows) + 60), "margin": dict(l=20, r=20, t=10, b=30)})
    figure.update_yaxes(automargin=True)
    return figure


def reasons_by_version(source, base_query: dict, limit: int = 8) -> go.Figure:
    """Deny reasons per policy version: a release that changed the distribution stands out."""
    rows = source.reasons(DENIED, by_version=True)
    top = sorted({r["reason"] for r in rows}, key=lambda reason: -sum(r["n"] for r in rows if r["reason"] == reason))
    top = top[:limit]
    figure = go.Figure()
    versions = sorted({(r["policy__name"], r["version__number"]) for r in rows})
    for name, number in versions:
        counts = {r["reason"]: r["n"] for r in rows
                  if (r["policy__name"], r["version__number"]) == (name, number) and r["reason"] in top}
        figure.add_bar(y=labels(top, 60)[::-1], x=[counts.get(reason, 0) for reason in top][::-1],
                       name=f"{name} v{number}", orientation="h",
                       customdata=[denied_search(base_query, policy=name, version=number, reason=reason)
                                   for reason in top][::-1])
    figure.update_layout(barmode="group", **{**LAYOUT, "height": max(260, 34 * len(top) * max(1, len(versions)) + 80)})
    figure.update_yaxes(automargin=True)
    return figure


def dry_run_against_enforced(source, base_query: dict) -> go.Figure:
    step = _bucket(source)
    rows = source.counts(step, outcomes=DENIED)
    figure = go.Figure()
    for outcome, label in ((Outcome.DENY, "Enforced deny"), (Outcome.WOULD_DENY, "Dry-run: would deny")):
        points = [r for r in rows if r["outcome"] == outcome]
        figure.add_scatter(
            x=[p["bucket"] for p in points], y=[p["n"] for p in points], name=label, mode="lines+markers",
            line=dict(color=COLORS[outcome]),
            customdata=[bucket_search(base_query, p["bucket"], step, outcome=outcome) for p in points],
        )
    figure.update_layout(yaxis=dict(title="decisions"), **LAYOUT)
    return time_axis(figure, step, [r["bucket"] for r in rows])


def latency(source, base_query: dict) -> go.Figure:
    """OPA's evaluation time, p50/p95/p99 per bucket, in milliseconds."""
    step = _bucket(source)
    rows = source.latency(step)
    figure = go.Figure()
    for p, color in ((50, "#12b76a"), (95, "#f79009"), (99, "#d92d20")):
        figure.add_scatter(
            x=[r["bucket"] for r in rows], y=[r[f"p{p}"] / 1e6 for r in rows], name=f"p{p}", mode="lines+markers",
            line=dict(color=color),
            customdata=[bucket_search(base_query, r["bucket"], step) for r in rows],
        )
    figure.update_layout(yaxis=dict(title="ms"), **LAYOUT)
    return time_axis(figure, step, [r["bucket"] for r in rows])


CHARTS = (  # key, title ({per}: the time bucket), what to say when there is nothing to draw
    ("volume", "Decisions per {per} and deny rate (%)", volume, "No decisions to count."),
    ("reasons", "Top deny reasons (decisions)", top_deny_reasons, "No denials among these decisions."),
    ("versions", "Deny reasons by policy version (decisions)", reasons_by_version,
     "No denials among these decisions."),
    ("dry_run", "Dry-run would-deny against enforced deny, per {per}", dry_run_against_enforced,
     "No denials, enforced or dry-run, among these decisions."),
    ("latency", "Evaluation latency per {per} (ms, p50/p95/p99)", latency,
     "OPA reported no evaluation times for these decisions."),
)


def period(source) -> dict:
    """What the charts cover, for the page to say: first and last decision, and the time bucket."""
    span = source.span()
    return {**span, "per": "minute" if _bucket(source) == MINUTE else "hour"}


def dashboard(source, base_query: dict) -> list[dict]:
    """[{"key", "title", "figure": plotly JSON, "empty"}] for the page, all following the same filters.
    `empty` is what to say instead of a chart with no points (blank axes read as a broken page)."""
    per = period(source)["per"]
    charts = []
    for key, title, build, empty in CHARTS:
        figure = json.loads(build(source, base_query).to_json())
        drawn = any(len(trace.get("x") or ()) for trace in figure["data"])
        charts.append({"key": key, "element_id": f"figure-{key}", "title": title.format(per=per),
                       "figure": figure, "empty": None if drawn else empty})
    return charts
