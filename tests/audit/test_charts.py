"""The audit dashboard: every chart follows the page's filters, and each point's link opens a
search that finds exactly the decisions the point counts."""
import html
import math
from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qsl, urlencode

import pytest
from django.http import QueryDict
from django.utils import timezone
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from audit import charts, time_ranges
from audit.filters import DecisionFilter
from core import rollups, store
from core.models import Decision, DecisionRollup, Outcome, ReasonRollup
from policies import services
from tests.factories import DecisionFactory, PolicyFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def decisions():
    gateway, changes = PolicyFactory(name="gateway"), PolicyFactory(name="changes")
    v2 = services.save_version(gateway, source=gateway.latest_version.source.replace('"admin"', '"owner"'),
                               author=gateway.latest_version.author, message="owners too")
    now = timezone.now().replace(second=0, microsecond=0)
    dana = {"user": {"id": "dana"}, "agent": {"id": "copilot-7"}, "action": "sql.query", "resource": "db/orders"}
    erin = {"user": {"id": "erin"}, "agent": {"id": "summarizer"}, "action": "web.search", "resource": "internet"}
    plan = [  # (policy, version, outcome, reasons, minutes ago, latency ms, input, environment)
        (gateway, 1, Outcome.ALLOW, [], 1, 0.2, dana, "prod"), (gateway, 2, Outcome.ALLOW, [], 2, 0.3, erin, "prod"),
        (gateway, 1, Outcome.DENY, ["token budget exceeded"], 2, 0.5, dana, "prod"),
        (gateway, 2, Outcome.DENY, ["token budget exceeded", "user is suspended"], 3, 0.9, erin, "staging"),
        (gateway, 2, Outcome.WOULD_DENY, ["token budget exceeded"], 3, 0.4, dana, "staging"),
        (gateway, 2, Outcome.REQUIRE_APPROVAL, ["prod deletes need a reviewer"], 4, 0.6, erin, "prod"),
        (changes, 1, Outcome.DENY, ["bucket must be encrypted"], 5, 1.2, dana, "prod"),
        (changes, 1, Outcome.ALLOW, [], 30, 0.1, erin, "staging"),
    ]
    for policy, number, outcome, reasons, minutes, ms, request, environment in plan:
        DecisionFactory(policy=policy, version=policy.versions.get(number=number), outcome=outcome, reasons=reasons,
                        timestamp=now - timedelta(minutes=minutes, seconds=-5), latency_ns=int(ms * 1e6),
                        input=request, environment=environment, instance=f"opa-{environment}-1")
    assert v2.number == 2


def figure(page, key):
    return next(c["figure"] for c in page.context["charts"] if c["key"] == key)


def search_count(client, url):
    return client.get(url).context["page"].paginator.count


@pytest.fixture
def auditor(client, make_user):
    client.force_login(make_user("auditor"))
    return client


def counted_links(page, key, axis):
    """(count, search url) of every point of a counting chart."""
    return [(count, url) for trace in figure(page, key)["data"] if trace.get("customdata")
            for count, url in zip(trace[axis], trace["customdata"]) if url]


FILTERS = [
    {}, {"policy": "gateway"}, {"outcome": "deny"}, {"outcome": "denied"}, {"policy": "changes"},
    {"policy": "gateway", "version": 2}, {"environment": "staging"}, {"instance": "opa-prod-1"}, {"user": "dana"},
    {"agent": "summarizer"}, {"action": "sql.query"}, {"resource": "internet"}, {"reason": "token budget exceeded"},
    {"q": "budget"}, {"q": "sql.query -encrypted"},
]


@pytest.mark.parametrize("filters", FILTERS)
def test_each_point_links_to_a_search_with_the_same_count(auditor, decisions, filters):
    page = auditor.get("/audit/dashboard/", filters)
    assert page.status_code == 200
    assert page.context["total"] == search_count(auditor, page.context["search_url"])
    assert page.context["total"] == search_count(auditor, "/audit/?" + urlencode(filters))
    bars = counted_links(page, "volume", "y")
    assert sum(y for y, _ in bars) == page.context["total"]
    for key, axis in (("volume", "y"), ("reasons", "x"), ("versions", "x"), ("dry_run", "y")):
        for count, url in counted_links(page, key, axis):
            assert search_count(auditor, url) == count, (key, url)


def test_a_time_range_that_cuts_through_a_bucket_links_only_its_part(auditor, decisions):
    minute = timezone.now().replace(second=0, microsecond=0) - timedelta(minutes=2)
    DecisionFactory(timestamp=minute + timedelta(seconds=40), outcome=Outcome.DENY, reasons=["late"])
    page = auditor.get("/audit/dashboard/", {"since": (minute + timedelta(seconds=20)).isoformat()})
    assert page.context["total"] == 2  # the late deny and the allow a minute later, not the deny at :05
    for key, axis in (("volume", "y"), ("dry_run", "y")):
        for count, url in counted_links(page, key, axis):
            assert search_count(auditor, url) == count, (key, url)


def test_the_filters_narrow_every_chart(auditor, decisions):
    everything = auditor.get("/audit/dashboard/")
    dana = auditor.get("/audit/dashboard/", {"user": "dana"})
    assert (everything.context["total"], dana.context["total"]) == (8, 4)
    reasons = {name: dict(zip(figure(page, "reasons")["data"][0]["y"], figure(page, "reasons")["data"][0]["x"]))
               for name, page in (("all", everything), ("dana", dana))}
    assert reasons["all"]["token budget exceeded"] == 3 and reasons["dana"]["token budget exceeded"] == 2
    assert "user is suspended" not in reasons["dana"]


def test_reasons_by_version_and_dry_run_against_enforced(auditor, decisions):
    page = auditor.get("/audit/dashboard/", {"policy": "gateway"})
    versions = figure(page, "versions")["data"]
    assert [trace["name"] for trace in versions] == ["gateway v1", "gateway v2"]
    per_version = {trace["name"]: dict(zip(trace["y"], trace["x"])) for trace in versions}
    assert per_version["gateway v1"]["token budget exceeded"] == 1
    assert per_version["gateway v2"]["token budget exceeded"] == 2
    lines = {trace["name"]: sum(trace["y"]) for trace in figure(page, "dry_run")["data"]}
    assert lines == {"Enforced deny": 2, "Dry-run: would deny": 1}


def test_latency_percentiles_come_from_opa_metrics(auditor, decisions):
    page = auditor.get("/audit/dashboard/", {"policy": "changes", "outcome": "deny"})
    p50 = next(t for t in figure(page, "latency")["data"] if t["name"] == "p50")
    assert p50["y"] == [pytest.approx(1.2, rel=0.05)]  # from the rollups' histogram: within one bucket


def test_the_dashboard_needs_the_audit_role(client, make_user):
    client.force_login(make_user("compliance_officer"))
    assert client.get("/audit/dashboard/").status_code == 403


def test_chart_text_is_data_not_markup(auditor):
    DecisionFactory(outcome=Outcome.DENY, reasons=["</script><script>alert(1)</script>"])
    body = auditor.get("/audit/dashboard/").content.decode()
    assert "</script><script>alert(1)" not in body  # the template escapes < > & inside the JSON attribute


def test_chart_labels_are_escaped_for_plotly(auditor):
    """Plotly renders <b>, <a href> and entities in labels: a reason is shown as the text it is."""
    DecisionFactory(outcome=Outcome.DENY, reasons=['agent <a href="https://evil.example">x</a> & <b>co</b>'])
    page = auditor.get("/audit/dashboard/")
    bar = figure(page, "reasons")["data"][0]
    assert bar["y"] == ['agent &lt;a href="https://evil.exam…']  # 32 characters of it, then escaped
    assert bar["hovertext"] == ['agent &lt;a href="https://evil.example"&gt;x&lt;/a&gt; &amp; &lt;b&gt;co&lt;/b&gt;']
    # The bar still links to the search for the reason as it was recorded.
    assert "reason=agent+%3Ca+href" in figure(page, "reasons")["data"][0]["customdata"][0]


def test_reasons_alike_in_their_first_characters_keep_their_own_bars(auditor):
    common = "the request's token budget is over the limit set for this agent by the platform team, "
    policy = PolicyFactory(name="budget")
    for period in ("daily", "monthly"):
        DecisionFactory(outcome=Outcome.DENY, reasons=[common + period], policy=policy, version=policy.latest_version)
    page = auditor.get("/audit/dashboard/")
    for key in ("reasons", "versions"):
        bars = figure(page, key)["data"][0]
        assert len(set(bars["y"])) == 2 and list(bars["x"]) == [1, 1], (key, bars["y"])
        assert all(shown.startswith(common[:32] + "…") for shown in bars["y"])
        assert sorted(bars["hovertext"]) == [html.escape(common + period, quote=False) for period in ("daily", "monthly")]


def test_a_minute_of_decisions_is_ticked_in_whole_minutes(auditor):
    """All in one bucket: the time axes span the minutes around it, ticked a minute apart."""
    minute = timezone.now().replace(second=0, microsecond=0) - timedelta(minutes=2)
    DecisionFactory(outcome=Outcome.DENY, reasons=["over budget"], timestamp=minute + timedelta(seconds=5),
                    latency_ns=400_000)
    page = auditor.get("/audit/dashboard/")
    for key in ("volume", "dry_run", "latency"):
        axis = figure(page, key)["layout"]["xaxis"]
        assert (axis.get("dtick"), axis.get("tickformat")) == (60_000, "%H:%M"), (key, axis)
        start, end = (datetime.fromisoformat(str(edge)) for edge in axis["range"])
        assert (start, end) == (minute - timedelta(minutes=1), minute + timedelta(minutes=1)), key


def test_charts_read_rollups_unless_a_filter_needs_the_rows(auditor, decisions):
    since = (timezone.now() - timedelta(minutes=3)).replace(second=0, microsecond=0)
    for filters, source in (({}, "RolledUp"), ({"since": since.strftime("%Y-%m-%dT%H:%M")}, "RolledUp"),
                            ({"q": "budget"}, "RawRows"),
                            ({"since": since.strftime("%Y-%m-%dT%H:%M:%S.123")}, "RawRows")):
        page = auditor.get("/audit/dashboard/", filters)
        assert page.context["source"] == source, filters
        assert page.context["total"] == search_count(auditor, page.context["search_url"]), filters
        bars = [(y, url) for trace in figure(page, "volume")["data"] if trace["type"] == "bar"
                for y, url in zip(trace["y"], trace["customdata"])]
        assert sum(y for y, _ in bars) == page.context["total"]
        for count, url in bars:
            assert search_count(auditor, url) == count, url


def round_ticks(axis):
    """An axis ticked from 0 every 1, 2, 2.5 or 5 times a power of ten, ending on a tick."""
    step = axis["dtick"]
    mantissa = step / 10 ** math.floor(math.log10(step))
    assert axis["tick0"] == 0 and round(mantissa, 9) in (1, 2, 2.5, 5), axis
    assert axis["range"][0] == 0 and round(axis["range"][1] / step, 9).is_integer(), axis


def test_hours_without_decisions_are_gaps_not_zeros(auditor):
    """Rates and latencies have no value in an hour without decisions: None, a break in the line."""
    hour = timezone.now().replace(minute=0, second=0, microsecond=0) - timedelta(hours=10)
    for hours, outcome in ((0, Outcome.ALLOW), (0, Outcome.DENY), (6, Outcome.ALLOW), (7, Outcome.WOULD_DENY)):
        DecisionFactory(timestamp=hour + timedelta(hours=hours, minutes=5), outcome=outcome, latency_ns=2_000_000,
                        reasons=["no"] if outcome != Outcome.ALLOW else [])
    page = auditor.get("/audit/dashboard/")
    expected_x = [hour + timedelta(hours=h) for h in (0, 1, 6, 7)]  # hour 1 marks the gap up to 6
    rate = next(t for t in figure(page, "volume")["data"] if t["name"] == "Deny rate %")
    assert [datetime.fromisoformat(x) for x in rate["x"]] == expected_x
    assert rate["y"] == [50, None, 0, 100] and rate["connectgaps"] is False
    for trace in figure(page, "latency")["data"]:
        assert trace["y"][1] is None and None not in (trace["y"][0], trace["y"][2], trace["y"][3]), trace["name"]
        assert trace["connectgaps"] is False and 0 not in trace["y"]
    enforced = next(t for t in figure(page, "dry_run")["data"] if t["name"] == "Enforced deny")
    assert enforced["y"] == [1, None, 0, 0]  # none in an hour with decisions is 0; no decisions, a gap


def test_axes_are_ticked_in_round_numbers(auditor, decisions):
    page = auditor.get("/audit/dashboard/")
    volume = figure(page, "volume")["layout"]
    assert (volume["yaxis2"]["range"], volume["yaxis2"]["tick0"], volume["yaxis2"]["dtick"]) == ([0, 100], 0, 25)
    round_ticks(volume["yaxis"])
    round_ticks(figure(page, "latency")["layout"]["yaxis"])
    round_ticks(figure(page, "dry_run")["layout"]["yaxis"])
    round_ticks(figure(page, "reasons")["layout"]["xaxis"])


@pytest.mark.parametrize(("top", "integer", "step", "end"), [
    (87.9, False, 20, 100), (3, True, 1, 4), (1, True, 1, 2), (0.93, False, 0.2, 1.0), (1234, True, 500, 1500),
    (12.5, False, 2.5, 15), (0, True, 1, 1),
])
def test_nice_axis(top, integer, step, end):
    assert charts.nice_axis(top, integer) == {"range": [0, end], "tick0": 0, "dtick": step, "rangemode": "tozero"}


def test_presets_set_a_relative_range_and_mark_it(auditor, decisions):
    asked = timezone.now()
    page = auditor.get("/audit/dashboard/", {"policy": "gateway"})
    links = {p["key"]: p for p in page.context["presets"]}
    assert list(links) == ["1h", "24h", "7d", "30d"] and not any(p["current"] for p in links.values())
    assert page.context["refresh_query"] == "" and b"hx-trigger" not in page.content

    query = dict(parse_qsl(links["1h"]["query"]))
    assert query["policy"] == "gateway" and query["range"] == "1h"
    since, until = (datetime.fromisoformat(query[k]).replace(tzinfo=UTC) for k in ("since", "until"))
    assert until - since == timedelta(hours=1) and until > asked  # the minute under way, included
    stale = {**query, "since": "2020-01-01T00:00", "until": "2020-01-01T01:00"}
    page = auditor.get("/audit/dashboard/", stale)  # a relative range moves with the clock
    assert page.context["total"] == 6 and page.context["source"] == "RolledUp"
    assert [p["key"] for p in page.context["presets"] if p["current"]] == ["1h"]
    assert 'aria-current="page">Last hour' in page.content.decode()
    assert "range" not in page.context["search_url"]
    refresh = page.context["refresh_query"]
    assert "range=1h" in refresh and "policy=gateway" in refresh

    partial = auditor.get(f"/audit/dashboard/?{refresh}", headers={"HX-Request": "true"})
    body = partial.content.decode()
    assert body.lstrip().startswith('<div id="dashboard-charts"') and "<html" not in body
    assert 'hx-trigger="every 60s"' in body and partial.context["total"] == 6
    # the heading's link comes along out of band: its count and window are the refreshed charts' own
    assert '<a class="button" id="see-decisions" data-testid="see-decisions"' in body and 'hx-swap-oob="true"' in body
    assert ">See these 6 decisions</a>" in body and html.escape(partial.context["search_url"]) in body

    absolute = auditor.get("/audit/dashboard/", {k: v for k, v in stale.items() if k != "range"})
    assert absolute.context["total"] == 0 and absolute.context["refresh_query"] == ""
    assert b"hx-trigger" not in absolute.content


def test_a_window_on_whole_local_hours_but_not_whole_utc_hours_counts_only_what_it_holds(auditor):
    """10:00 at +05:30 is 04:30 UTC: the hour rollups would also count 04:00 to 04:30."""
    for minute in (15, 45):
        DecisionFactory(timestamp=datetime(2026, 11, 27, 4, minute, tzinfo=UTC))
    page = auditor.get("/audit/dashboard/",
                       {"since": "2026-11-27T10:00:00+05:30", "until": "2026-11-27T12:00:00+05:30"})
    assert page.context["total"] == 1 and page.context["source"] == "RolledUp"


def test_day_long_presets_fall_on_whole_hours():
    now = datetime(2024, 5, 1, 10, 17, 42, tzinfo=UTC)
    assert time_ranges.preset_window(timedelta(hours=1), now) == (datetime(2024, 5, 1, 9, 18, tzinfo=UTC),
                                                              datetime(2024, 5, 1, 10, 18, tzinfo=UTC))
    assert time_ranges.preset_window(timedelta(days=7), now) == (datetime(2024, 4, 24, 11, tzinfo=UTC),
                                                             datetime(2024, 5, 1, 11, tzinfo=UTC))


@pytest.mark.parametrize("source", ["RolledUp", "RawRows"])
def test_a_week_or_a_month_is_counted_per_day(auditor, source):
    """A week's chart has 7 bars, not 168 hourly slivers; each day's bar opens that day's decisions."""
    today = timezone.now().replace(hour=0, minute=0, second=0, microsecond=0)
    for days, outcome in ((1, Outcome.ALLOW), (1, Outcome.DENY), (2, Outcome.ALLOW), (5, Outcome.DENY)):
        DecisionFactory(timestamp=today - timedelta(days=days, hours=-3), outcome=outcome, latency_ns=1_000_000,
                        reasons=["no"] if outcome == Outcome.DENY else [], input={"user": {"id": "dana"}})
    extra = {"user": "dana"} if source == "RawRows" else {}  # a filter the rollups do not count by
    for key, days in (("7d", 7), ("30d", 30)):
        page = auditor.get("/audit/dashboard/", {"range": key, "since": "2020-01-01T00:00",
                                                 "until": "2020-01-02T00:00", **extra})
        assert page.context["source"] == source and page.context["period"]["per"] == "day"
        assert "per day" in page.content.decode()
        volume = figure(page, "volume")
        bars = {t["name"]: t for t in volume["data"] if t["type"] == "bar"}
        assert [datetime.fromisoformat(x) for x in bars["Allow"]["x"]] == [today - timedelta(days=2),
                                                                             today - timedelta(days=1)]
        assert bars["Allow"]["y"] == [1, 1] and bars["Allow"]["xperiodalignment"] == "middle"
        rate = next(t for t in volume["data"] if t["name"] == "Deny rate %")
        assert rate["y"] == [100, None, 0, 50]  # days 5, (gap), 2, 1
        assert volume["layout"]["xaxis"]["tickformat"] == "%b %d"
        day_link = bars["Allow"]["customdata"][1]
        linked = dict(parse_qsl(day_link.split("?", 1)[1]))
        since, until = (datetime.fromisoformat(linked[k]) for k in ("since", "until"))
        assert until - since == timedelta(days=1) and search_count(auditor, day_link) == 1
    assert len(figure(page, "latency")["data"][0]["x"]) == 4  # three days and one gap


def test_charts_read_the_coarsest_rollups_that_fit_and_count_what_the_decisions_hold():
    """A chart per day reads one row per day, a chart per hour one per hour;
    the days or hours a window cuts through come from finer rows. Whatever the window (on whole
    minutes, as the page's rollups need), every bucket holds what a count over the decisions finds,
    its latency histogram included, and minute rows are read only for the hours the window cuts."""
    start = datetime(2026, 3, 1, tzinfo=UTC)
    minutes = st.one_of(st.none(), st.integers(-24 * 60, 11 * 24 * 60), st.integers(-24, 24 * 11).map(lambda h: h * 60))
    decision = st.tuples(st.integers(0, 10 * 24 * 60 - 1), st.sampled_from([Outcome.ALLOW, Outcome.DENY,
                                                                              Outcome.WOULD_DENY]),
                         st.sampled_from(["prod", "dev"]), st.sampled_from(["over budget", "no ticket"]),
                         st.sampled_from([None, 900, 1_000_000, 1_040_000, 37_000_000]))  # ns; None: not timed

    @hypothesis_settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck))
    @given(st.lists(decision, min_size=1, max_size=30), minutes, minutes)
    def check(plan, since_minute, until_minute):
        for model in (Decision, DecisionRollup, ReasonRollup):
            model.objects.all().delete()
        store.insert([DecisionFactory.build(timestamp=start + timedelta(minutes=minute), outcome=outcome,
                                            environment=environment, latency_ns=latency,
                                            reasons=[] if outcome == Outcome.ALLOW else [reason])
                      for minute, outcome, environment, reason, latency in plan])
        query = QueryDict(mutable=True)
        for name, minute in (("since", since_minute), ("until", until_minute)):
            if minute is not None:
                query[name] = (start + timedelta(minutes=minute)).strftime("%Y-%m-%dT%H:%M")
        filterset = DecisionFilter(query, queryset=Decision.objects.all())
        assert filterset.is_valid(), filterset.errors
        rolled = charts.source_for(filterset)
        raw = charts.RawRows(filterset.qs, rolled.window)
        assert isinstance(rolled, charts.RolledUp)

        assert rolled.total() == raw.total()
        assert rolled.reasons(charts.DENIED) == raw.reasons(charts.DENIED)
        for step in (charts.DAY, charts.HOUR):
            assert as_tuples(rolled.counts(step)) == as_tuples(raw.counts(step))
            histograms = rollups.latency_histograms(rolled.rows(DecisionRollup, step), "bucket")
            timed = raw.decisions.filter(latency_ns__isnull=False).annotate(bucket=raw.trunc(step))
            raw_histograms: dict = {}
            for bucket, latency in timed.values_list("bucket", "latency_ns"):
                counted = raw_histograms.setdefault((bucket,), {})
                counted[rollups.latency_bucket(latency)] = counted.get(rollups.latency_bucket(latency), 0) + 1
            assert histograms == raw_histograms
            read = rolled.rows(DecisionRollup, step)
            assert not read.filter(granularity__gt=charts.GRANULARITY[step]).exists()  # nothing coarser
            minute_rows = read.filter(granularity=DecisionRollup.Granularity.MINUTE).values_list("period", flat=True)
            assert all(in_a_cut_hour(period, rolled.window) for period in minute_rows)

    check()


def in_a_cut_hour(period, window) -> bool:
    """Whether `period` lies in an hour that the window starts or ends inside of."""
    hour = period.replace(minute=0)
    return any(bound and bound.replace(minute=0) == hour and bound.minute for bound in window)


def as_tuples(rows) -> list[tuple]:
    return sorted((row["bucket"], row.get("outcome", ""), row["n"]) for row in rows)


def test_bucket_sizes_fit_the_range():
    def step(hours):
        now = timezone.now()
        return charts._bucket(charts.RawRows(Decision.objects.none(), (now - timedelta(hours=hours), now)))
    assert [step(h) for h in (1, 6, 7, 24, 72, 73, 24 * 7, 24 * 30)] == [
        charts.MINUTE, charts.MINUTE, charts.HOUR, charts.HOUR, charts.HOUR, charts.DAY, charts.DAY, charts.DAY]
