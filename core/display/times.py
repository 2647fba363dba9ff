"""Times as people read them on a page: "2026-11-30 06:30:47 UTC", never an ISO string with its offset and
microseconds ("2026-11-30T06:30:47.774038+00:00"), which is how JSON (the activity log, a manifest) keeps them."""
import re
from datetime import UTC, datetime

ISO_TIME = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?([+-]\d{2}:\d{2}|Z)\Z")


def is_iso_time(value) -> bool:
    return isinstance(value, str) and bool(ISO_TIME.match(value))


def utc_words(value):
    """An ISO time with its offset, in UTC to the second; anything else as it was."""
    if not is_iso_time(value):
        return value
    return datetime.fromisoformat(value.replace("Z", "+00:00")).astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
