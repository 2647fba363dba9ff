"""Decision ids in URLs. An id is whatever OPA (or an enforcement point) sent, `/`, `?`, `%`,
`..` and all, so every route carries it in a URL-safe form: a plain id as it is, any other as
`~` and the base64url of its UTF-8. Either form reads back as the original id."""
from __future__ import annotations

import base64
import binascii
import re

from django.urls import register_converter

PLAIN = re.compile(r"[A-Za-z0-9_-][A-Za-z0-9._-]*")


def to_url(decision_id: str) -> str:
    if PLAIN.fullmatch(decision_id):
        return decision_id
    return "~" + base64.urlsafe_b64encode(decision_id.encode("utf-8", "surrogatepass")).decode().rstrip("=")


def from_url(value: str) -> str:
    if not value.startswith("~"):
        return value
    encoded = value[1:]
    try:
        return base64.urlsafe_b64decode(encoded + "=" * (-len(encoded) % 4)).decode("utf-8", "surrogatepass")
    except (binascii.Error, UnicodeDecodeError, ValueError):
        return value  # not one of ours: looked up as it is, and found or not


class DecisionIdConverter:
    regex = r"[^/]+"

    def to_python(self, value: str) -> str:
        return from_url(value)

    def to_url(self, value: str) -> str:
        return to_url(str(value))


register_converter(DecisionIdConverter, "decision_id")
