"""The audit dashboard's charts, built with plotly from the same filtered queryset as the search.

Every figure's points carry, in `customdata`, the search URL that lists the decisions behind
them, so a click on a bar opens exactly those decisions. Aggregates run in Postgres, on the
rollups (per minute, hour and day) when the filters are ones the rollups are counted by (rollups.py), else
on the filtered decisions themselves: both sources answer the same questions.
"""
from __future__ import annotations

import html
import json
import math
from datetime import UTC, timedelta

import plotly.graph_objects as go
from django.core.exceptions import ValidationError
from django.db.models import Aggregate, Count, DateTimeField, F, FloatField, Func, Max, Min, Q, Sum
from django.db.models.functions import TruncDay, TruncHour, TruncMinute
from django.utils import timezone
from django_filters.fields import IsoDateTimeField

from core import rollups
from core.models import DENIED_OUTCOMES as DENIED
from core.models import DecisionRollup, Outcome, ReasonRollup

from .filters import DENIED as DENIED_FILTER
from .filters import search_url

Granularity = DecisionRollup.Granularity

# Reason labels on a bar chart's axis: short enough that a 400px screen keeps room for the bars.
# The whole reason is in the bar's hover text.
LABEL_CHARS, HOVER_CHARS = 32, 400

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


def hover(texts: list[str]) -> list[str]:
    """The whole (escaped) text of each label, for the hover box."""
    return [label(text, HOVER_CHARS) + ("…" if len(text) > HOVER_CHARS else "") for text in texts]


def nice_step(top: float, ticks: int = 5, integer: bool = False) -> float:
    """A round tick step (1, 2, 2.5 or 5 times a power of ten) giving about `ticks` ticks up to `top`."""
    if top <= 0:
        return 1
    raw = top / ticks
    power = 10 ** math.floor(math.log10(raw))
    factors = (1, 2, 5, 10) if integer else (1, 2, 2.5, 5, 10)
    step = next(factor * power for factor in factors if factor * power >= raw * (1 - 1e-9))
    step = max(1, round(step)) if integer else float(f"{step:.12g}")
    return step


def nice_axis(top: float, integer: bool = False) -> dict:
    """A y axis from 0 to a round value above `top`, ticked every round step."""
    step = nice_step(top, integer=integer)
    end = float(f"{math.ceil(top * 1.04 / step) * step if top > 0 else step:.12g}")
    return dict(range=[0, end], tick0=0, dtick=step, rangemode="tozero")


def gapped(values: dict, step: timedelta) -> tuple[list, list]:
    """(x, y) of a line over {bucket: value}, with a None point in every stretch of buckets that
    had no value: Plotly (connectgaps off) leaves the stretch blank rather than drawing through it."""
    xs, ys = [], []
    for bucket in sorted(values):
        if xs and bucket - xs[-1] > step:
            xs.append(xs[-1] + step)
            ys.append(None)
        xs.append(bucket)
        ys.append(values[bucket])
    return xs, ys


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


class UtcDay(Func):
    """The UTC day a rollup period falls in. Not TruncDay, whose per-row time zone conversion in
    Python took as long as the query for a month's latency histograms."""

    template = "date_trunc('day', %(expressions)s, 'UTC')"
    output_field = DateTimeField()


MINUTE, HOUR, DAY = timedelta(minutes=1), timedelta(hours=1), timedelta(days=1)
TRUNC = {MINUTE: TruncMinute, HOUR: TruncHour, DAY: TruncDay}
GRANULARITY = {MINUTE: Granularity.MINUTE, HOUR: Granularity.HOUR, DAY: Granularity.DAY}


class RawRows:
    """Chart data counted over the filtered decisions themselves."""

    def __init__(self, decisions, window=(None, None)):
        self.decisions = decisions.order_by()  # the default ordering would leak into GROUP BY
        self.window = window  # the page's (since, until), either None when not set

    @staticmethod
    def trunc(step):
        return TRUNC[step]("timestamp")

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
    """The same chart data, summed from the rollups (filters: see ROLLUP_FILTERS). A chart per day reads
    day rows for the window's whole days, a chart per hour hour rows for its whole hours; finer rows
    fill in only the parts of a day or hour the window cuts (rows())."""

    def __init__(self, where: Q, window=(None, None), using: str = "default"):
        self.where = where
        self.window = window
        self.using = using

    def rows(self, model, step=DAY):
        """The fewest rollup rows that answer exactly, each in the bucket of its step: rows of the step
        for the whole periods inside the window, finer rows for the parts of a period it cuts (from
        06:13, per hour: the minutes to 07:00, then hour rows)."""
        coarsest = step
        if step == DAY and timezone.get_current_timezone_name() != "UTC":  # day rows count UTC days
            coarsest = HOUR
        rows = model.objects.using(self.using).filter(self.where)
        tiers = rollups.tiers(*self.window, coarsest=GRANULARITY[coarsest])
        if len(tiers) == 1 and tiers[0][0] == GRANULARITY[step]:
            return rows.filter(tiers[0][1]).annotate(bucket=F("period"))
        bucket = UtcDay("period") if coarsest == DAY else TRUNC[step]("period")
        return rows.filter(rollups.covering(*self.window, GRANULARITY[coarsest])).annotate(bucket=bucket)

    def total(self) -> int:
        return self.rows(DecisionRollup).aggregate(n=Sum("decisions"))["n"] or 0

    def span(self):
        minutes = self.rows(DecisionRollup, MINUTE)  # to the minute, as the page says it
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
        histograms = rollups.latency_histograms(self.rows(DecisionRollup, step), "bucket")
        found = []
        for (period,), histogram in sorted(histograms.items()):
            values = rollups.percentiles(histogram, (0.5, 0.95, 0.99))
            found.append({"bucket": period, "p50": values[0.5], "p95": values[0.95], "p99": values[0.99]})
        return found


# Search filters the rollups are counted by, and the rollup lookup each one becomes.
ROLLUP_FILTERS = {"since": "period__gte", "until": "period__lt", "outcome": "outcome", "policy": "policy",
                  "version": "version__number", "environment": "environment", "effective_mode": "effective_mode"}


def source_for(filterset, using: str = "default"):
    """Rollups when every active filter is one they are counted by (times on whole minutes), else raw rows
    (the filterset's own, on its database). `using`: the database the rollups are read from."""
    lookups = {}
    window = (filterset.form.cleaned_data.get("since"), filterset.form.cleaned_data.get("until"))
    for name, value in filterset.form.cleaned_data.items():
        if value in (None, "", [], ()):
            continue
        if name not in ROLLUP_FILTERS:
            return RawRows(filterset.qs, window)
        if name in ("since", "until"):
            utc = value.astimezone(UTC)  # rollups are periods of UTC: 10:00+05:30 is half past an hour
            if utc.second or utc.microsecond:
                return RawRows(filterset.qs, window)
        if name == "outcome" and value == DENIED_FILTER:
            lookups["outcome__in"] = DENIED
        else:
            lookups[ROLLUP_FILTERS[name]] = value
    return RolledUp(Q(**lookups), window, using)


def _bucket(source):
    """Minutes up to six hours, hours up to three days, days beyond (a week is 7 bars, 30 days 30, not
    hundreds of hourly slivers), so a chart has a readable number of bars. The range is the page's
    since/until where set, else the decisions' own first and last."""
    since, until = source.window
    if not (since and until):
        span = source.span()
        since, until = since or span["first"], until or span["last"]
    if since and until and until - since <= timedelta(hours=6):
        return MINUTE
    if since and until and until - since <= timedelta(days=3):
        return HOUR
    return DAY


def time_axis(figure: go.Figure, step: timedelta, buckets, window=(None, None)) -> go.Figure:
    """Whole minutes (or hours) on a time axis, over the page's since/until when both are set.
    Left alone, Plotly ticks a chart of one or two buckets in fractions of a second
    ("13:16:00.0002"). Hours are ticked time over date, two short lines rather than one long one."""
    since, until = window
    if since and until:
        figure.update_xaxes(range=[since, until])
        if until - since < 6 * step:
            figure.update_xaxes(dtick=step.total_seconds() * 1000)
    elif buckets:
        first, last = min(buckets), max(buckets)
        if last - first < 6 * step:
            figure.update_xaxes(range=[first - step, last + step], dtick=step.total_seconds() * 1000)
    # each bar and point is drawn across (at the middle of) its bucket, so a day sits over its own date
    figure.update_traces(xperiod=step.total_seconds() * 1000, xperiodalignment="middle")
    formats = {MINUTE: "%H:%M", HOUR: "%H:%M<br>%b %d", DAY: "%b %d"}
    return figure.update_xaxes(tickformat=formats[step], nticks=8)


def volume(source, base_query: dict) -> go.Figure:
    """Decisions per time bucket by outcome, with the deny rate (enforced and dry-run) on top:
    a bucket without decisions has no rate, so the line breaks there instead of dropping to 0."""
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
            marker_color=COLORS.get(outcome), width=step.total_seconds() * 900,  # 90 % of its bucket, in ms
            customdata=[bucket_search(base_query, b, step, outcome=outcome) for b in buckets],
        )
    x, y = gapped({b: 100 * denied.get(b, 0) / totals[b] for b in totals}, step)
    figure.add_scatter(x=x, y=y, name="Deny rate %", yaxis="y2", mode="lines+markers", connectgaps=False, cliponaxis=False,
                       line=dict(color="#101828"), hovertemplate="%{y:.1f} % denied<extra></extra>")
    figure.update_layout(
        barmode="stack", yaxis=dict(title="decisions", **nice_axis(max(totals.values(), default=0), integer=True)),
        yaxis2=dict(title="deny rate", overlaying="y", side="right", range=[0, 100], tick0=0, dtick=25,
                    ticksuffix=" %", showgrid=False), **LAYOUT)
    return time_axis(figure, step, sorted(totals), source.window)


def top_deny_reasons(source, base_query: dict, limit: int = 10) -> go.Figure:
    rows = source.reasons(DENIED, limit=limit)[::-1]  # largest at the top of a horizontal bar chart
    reasons = [r["reason"] for r in rows]
    figure = go.Figure(go.Bar(
        x=[r["n"] for r in rows], y=labels(reasons, LABEL_CHARS), orientation="h", marker_color="#d92d20",
        customdata=[denied_search(base_query, reason=reason) for reason in reasons], hovertext=hover(reasons),
        hovertemplate="%{hovertext}<br>%{x} decisions<extra></extra>",
    ))
    top = max((r["n"] for r in rows), default=0)
    figure.update_layout(**{**LAYOUT, "height": max(240, 32 * len(rows) + 60), "margin": dict(l=10, r=20, t=10, b=30)})
    figure.update_xaxes(**nice_axis(top, integer=True))
    figure.update_yaxes(automargin=True)
    return figure


def reasons_by_version(source, base_query: dict, limit: int = 8) -> go.Figure:
    """Deny reasons per policy version: a release that changed the distribution stands out."""
    rows = source.reasons(DENIED, by_version=True)
    top = sorted({r["reason"] for r in rows}, key=lambda reason: -sum(r["n"] for r in rows if r["reason"] == reason))
    top = top[:limit]
    figure = go.Figure()
    versions = sorted({(r["policy__name"], r["version__number"]) for r in rows})
    most = 0
    for name, number in versions:
        counts = {r["reason"]: r["n"] for r in rows
                  if (r["policy__name"], r["version__number"]) == (name, number) and r["reason"] in top}
        most = max(most, *counts.values(), 0)
        figure.add_bar(y=labels(top, LABEL_CHARS)[::-1], x=[counts.get(reason, 0) for reason in top][::-1],
                       name=f"{name} v{number}", orientation="h", hovertext=hover(top)[::-1],
                       hovertemplate=f"%{{hovertext}}<br>{html.escape(name, quote=False)} v{number}: "
                                     "%{x} decisions<extra></extra>",
                       customdata=[denied_search(base_query, policy=name, version=number, reason=reason)
                                   for reason in top][::-1])
    figure.update_layout(barmode="group", **{**LAYOUT, "height": max(260, 34 * len(top) * max(1, len(versions)) + 80),
                                             "margin": dict(l=10, r=20, t=10, b=40)})
    figure.update_xaxes(**nice_axis(most, integer=True))
    figure.update_yaxes(automargin=True)
    return figure


def dry_run_against_enforced(source, base_query: dict) -> go.Figure:
    """Enforced and dry-run denials per bucket: 0 in a bucket with other decisions, a gap where
    there were no decisions at all."""
    step = _bucket(source)
    rows = source.counts(step)
    seen = {r["bucket"] for r in rows}
    figure = go.Figure()
    most = 0
    for outcome, name in ((Outcome.DENY, "Enforced deny"), (Outcome.WOULD_DENY, "Dry-run: would deny")):
        if base_query.get("outcome") not in (None, DENIED_FILTER, outcome):
            continue  # the page left this outcome out: not a line of zeros
        counts = dict.fromkeys(seen, 0) | {r["bucket"]: r["n"] for r in rows if r["outcome"] == outcome}
        most = max(most, *counts.values(), 0)
        x, y = gapped(counts, step)
        figure.add_scatter(
            x=x, y=y, name=name, mode="lines+markers", connectgaps=False, cliponaxis=False,
            line=dict(color=COLORS[outcome]),
            customdata=[bucket_search(base_query, b, step, outcome=outcome) if n else None  # 0: nothing to open
                        for b, n in zip(x, y)],
        )
    figure.update_layout(yaxis=dict(title="decisions", **nice_axis(most, integer=True)), **LAYOUT)
    return time_axis(figure, step, sorted(seen), source.window)


def latency(source, base_query: dict) -> go.Figure:
    """OPA's evaluation time, p50/p95/p99 per bucket, in milliseconds; no line where OPA reported none."""
    step = _bucket(source)
    rows = source.latency(step)
    figure = go.Figure()
    for p, color in ((50, "#12b76a"), (95, "#f79009"), (99, "#d92d20")):
        x, y = gapped({r["bucket"]: r[f"p{p}"] / 1e6 for r in rows}, step)
        figure.add_scatter(
            x=x, y=y, name=f"p{p}", mode="lines+markers", connectgaps=False, cliponaxis=False,
            line=dict(color=color),
            customdata=[None if ms is None else bucket_search(base_query, b, step) for b, ms in zip(x, y)],
            hovertemplate=f"p{p}: %{{y:.3g}} ms<extra></extra>",
        )
    top = max((r["p99"] / 1e6 for r in rows), default=0)
    figure.update_layout(yaxis=dict(title="ms", **nice_axis(top)), **LAYOUT)
    return time_axis(figure, step, [r["bucket"] for r in rows], source.window)


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
    return {**span, "per": {MINUTE: "minute", HOUR: "hour", DAY: "day"}[_bucket(source)]}


def dashboard(source, base_query: dict) -> list[dict]:
    """[{"key", "title", "figure": plotly JSON, "empty"}] for the page, all following the same filters.
    `empty` is what to say instead of a chart with no points (blank axes read as a broken page)."""
    per = period(source)["per"]
    charts = []
    for key, title, build, empty in CHARTS:
        figure = json.loads(build(source, base_query).to_json())
        drawn = any(len(trace.get("x") or ()) for trace in figure["data"])
        # The JSON goes in an attribute (escaped by the template), not a <script> element: htmx
        # drops every <script> from what it swaps in (allowScriptTags off), so a refresh would lose it.
        charts.append({"key": key, "title": title.format(per=per), "figure": figure,
                       "figure_json": json.dumps(figure), "empty": None if drawn else empty})
    return charts
