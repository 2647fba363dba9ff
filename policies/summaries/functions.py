"""Rego's built-in functions in words: what a reviewer reads for `time.clock(...)`, `object.keys(...)`.

Pure wording, no tree walking: phrasing.py phrases each argument and fills the template, so
this table can grow without touching how rules are read. `{0}`, `{1}`... are the arguments.
"""
from __future__ import annotations

import re

# A function's value, as a noun.
NOUNS = {
    "time.parse_rfc3339_ns": "{0} (as a point in time)",
    "time.parse_ns": "{1} (a time written as {0})",
    "time.parse_duration_ns": "the duration {0}",
    "time.now_ns": "the current time",
    "time.clock": "the time of day (hour, minute, second) of {0}",
    "time.date": "the date (year, month, day) of {0}",
    "time.weekday": "the day of the week of {0}",
    "time.add_date": "{0} moved by {1} years, {2} months and {3} days",
    "time.diff": "the time between {0} and {1}",
    "object.keys": "the names in {0}",
    "object.get": "the entry {1} of {0} (or {2} when there is none)",
    "object.union": "{0} merged with {1}",
    "object.remove": "{0} without the entries {1}",
    "object.filter": "only the entries {1} of {0}",
    "and": "the entries of {0} that are also in {1}",
    "intersection": "the entries common to all of {0}",
    "union": "the entries of any of {0}",
    "array.concat": "{0} followed by {1}",
    "array.slice": "items {1} to {2} of {0}",
    "concat": "{1} joined with {0}",
    "split": "{0} split at every {1}",
    "replace": "{0} with every {1} replaced by {2}",
    "substring": "{2} characters of {0} from position {1}",
    "trim": "{0} without {1} at either end",
    "trim_prefix": "{0} without the leading {1}",
    "trim_suffix": "{0} without the trailing {1}",
    "indexof": "the position of {1} in {0}",
    "strings.replace_n": "{1} with the replacements {0}",
    "to_number": "{0} as a number",
    "format_int": "{0} written in base {1}",
    "abs": "the absolute value of {0}",
    "round": "{0} rounded", "ceil": "{0} rounded up", "floor": "{0} rounded down",
    "div": "{0} divided by {1}", "rem": "the remainder of {0} divided by {1}",
    "max": "the largest of {0}", "min": "the smallest of {0}", "sum": "the total of {0}",
    "product": "the product of {0}",
    "numbers.range": "the whole numbers from {0} to {1}",
    "json.unmarshal": "{0} read as JSON", "yaml.unmarshal": "{0} read as YAML",
    "base64.decode": "{0} decoded from base64", "base64.encode": "{0} encoded in base64",
    "urlquery.decode": "{0} decoded from a URL", "io.jwt.decode": "the token {0}, decoded",
    "crypto.sha256": "the SHA-256 digest of {0}", "units.parse_bytes": "{0} in bytes",
    "units.parse": "{0} as a number", "semver.compare": "how version {0} compares with version {1}",
    "net.cidr_expand": "the addresses of {0}", "uuid.rfc4122": "a new identifier",
    "strings.reverse": "{0} reversed", "type_name": "the type of {0}",
    "graph.reachable": "what {1} reaches in {0}",
}
# Parts of what a function returns as a list: `[hour, _, _] := time.clock(t)`.
ITEMS = {
    "time.clock": ["the hour of {0}", "the minute of {0}", "the second of {0}"],
    "time.date": ["the year of {0}", "the month of {0}", "the day of the month of {0}"],
    "time.diff": ["the years between {0}", "the months between {0}", "the days between {0}", "the hours between {0}",
                  "the minutes between {0}", "the seconds between {0}"],
    "split": ["the first part of {0}", "the second part of {0}", "the third part of {0}"],
    "io.jwt.decode": ["the header of {0}", "the claims of {0}", "the signature of {0}"],
}
# A function used as a condition: (when it holds, when it does not).
CONDITIONS = {
    "net.cidr_contains": ("{0} contains the address {1}", "{0} does not contain the address {1}"),
    "net.cidr_intersects": ("{0} overlaps {1}", "{0} does not overlap {1}"),
    "glob.match": ("{2} matches the wildcard pattern {0}", "{2} does not match the wildcard pattern {0}"),
    "strings.any_prefix_match": ("{0} starts with any of {1}", "{0} starts with none of {1}"),
    "strings.any_suffix_match": ("{0} ends with any of {1}", "{0} ends with none of {1}"),
    "semver.is_valid": ("{0} is a valid version number", "{0} is not a valid version number"),
    "regex.is_valid": ("{0} is a valid pattern", "{0} is not a valid pattern"),
    "json.is_valid": ("{0} is valid JSON", "{0} is not valid JSON"),
    "io.jwt.verify_rs256": ("the token {0} is signed with the key {1}", "the token {0} is not signed with the key {1}"),
    "io.jwt.verify_hs256": ("the token {0} is signed with the secret {1}",
                            "the token {0} is not signed with the secret {1}"),
    "time.parse_rfc3339_ns": ("{0} is a valid time", "{0} is not a valid time"),
    "object.get": ("{0} has the entry {1} and it is not false (or {2} when there is none)",
                   "{0} has no entry {1}, or it is false (when missing, {2} counts)"),
}

_SLOT = re.compile(r"\{(\d+)\}")


def fill(template: str, args: list) -> list:
    """The template as (text, argument index) pieces, in order."""
    out, at = [], 0
    for m in _SLOT.finditer(template):
        if m.start() > at:
            out.append(template[at:m.start()])
        index = int(m.group(1))
        if index >= len(args):
            raise IndexError(index)
        out.append(index)
        at = m.end()
    if at < len(template):
        out.append(template[at:])
    return out


def item_template(op: str, index: int) -> str:
    items = ITEMS.get(op)
    if items and index < len(items):
        return items[index]
    return f"item {index + 1} of " + "{0}"
