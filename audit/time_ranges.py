"""The dashboard's relative time ranges (last hour, day, week, 30 days): bounds on the rollups'
own minutes or hours, moving with the clock each time the page asks."""
from __future__ import annotations

from datetime import datetime, timedelta
from urllib.parse import urlencode

MINUTE, HOUR = timedelta(minutes=1), timedelta(hours=1)

# Time-range presets: (key, label, length). A preset is relative: `range=<key>` in the URL moves
# since/until with the clock each time the page (or its auto-refresh) asks.
PRESETS = (("1h", "Last hour", timedelta(hours=1)), ("24h", "Last day", timedelta(days=1)),
           ("7d", "Last week", timedelta(days=7)), ("30d", "Last 30 days", timedelta(days=30)))
MINUTE_FORMAT = "%Y-%m-%dT%H:%M"  # what the form's datetime-local fields show


def preset_window(length: timedelta, now: datetime) -> tuple[datetime, datetime]:
    """(since, until) for a preset: until the end of the current minute (an hour or less) or hour
    (longer), so the bounds fall on the rollups' own minutes or hours."""
    unit = MINUTE if length <= HOUR else HOUR
    floor = now.replace(second=0, microsecond=0) if unit == MINUTE else now.replace(minute=0, second=0, microsecond=0)
    until = floor + unit
    return until - length, until


def time_range(query: dict, now: datetime) -> tuple[dict, str | None]:
    """(the page's query, the preset in force or None). A preset applies when the URL names it
    with both since and until (a link below sets all three); it then replaces them with the
    window ending now. Anything else (times typed in the form, a bound removed) is absolute."""
    key = query.get("range")
    length = dict((k, length) for k, _, length in PRESETS).get(key)
    if not (length and query.get("since") and query.get("until")):
        return {k: v for k, v in query.items() if k != "range"}, None
    since, until = preset_window(length, now)
    return {**query, "since": since.strftime(MINUTE_FORMAT), "until": until.strftime(MINUTE_FORMAT)}, key


def presets(query: dict, current: str | None, now: datetime) -> list[dict]:
    """A link per preset, keeping the page's other filters; the one in force is marked."""
    rest = {k: v for k, v in query.items() if k not in ("since", "until", "range", "page") and v}
    found = []
    for key, text, length in PRESETS:
        since, until = preset_window(length, now)
        link = {**rest, "range": key, "since": since.strftime(MINUTE_FORMAT), "until": until.strftime(MINUTE_FORMAT)}
        found.append({"key": key, "label": text, "query": urlencode(link), "current": key == current})
    return found
