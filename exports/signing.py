"""Export manifests are signed with Ed25519 (the `cryptography` library), so a manifest handed over
with its file proves it came from this Gavel and was not edited since.

The signature covers the manifest's canonical JSON (keys sorted, no spaces, UTF-8) without its own
"signature" member; exports/verify_gavel_export.py checks it the same way with nothing but Python and
`cryptography`. The private key is GAVEL_EXPORT_SIGNING_KEY (settings; kept like SECRET_KEY); its
public half, as base64 of the 32 raw bytes, is what auditors are given (the exports page shows it).
"""
from __future__ import annotations

import base64
import hashlib
import json
from functools import lru_cache

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from django.conf import settings

ALGORITHM = "Ed25519"


def canonical(manifest: dict) -> bytes:
    """The bytes a signature covers: the manifest without "signature", keys sorted, compact, UTF-8."""
    unsigned = {key: value for key, value in manifest.items() if key != "signature"}
    return json.dumps(unsigned, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


@lru_cache(maxsize=4)
def _private_key(seed_b64: str) -> Ed25519PrivateKey:
    return Ed25519PrivateKey.from_private_bytes(base64.b64decode(seed_b64))


def _key() -> Ed25519PrivateKey:
    return _private_key(settings.GAVEL_EXPORT_SIGNING_KEY)


def public_key() -> str:
    """The public key auditors verify manifests with: base64 of its 32 raw bytes."""
    raw = _key().public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
    return base64.b64encode(raw).decode()


def key_id(public_b64: str | None = None) -> str:
    """A short name for a public key: the first 16 hex digits of SHA-256 of its raw bytes."""
    return hashlib.sha256(base64.b64decode(public_b64 or public_key())).hexdigest()[:16]


def sign(manifest: dict) -> dict:
    """The manifest with its "signature": algorithm, key id, public key and the signature (base64)."""
    value = _key().sign(canonical(manifest))
    signed = {key: value for key, value in manifest.items() if key != "signature"}
    signed["signature"] = {"algorithm": ALGORITHM, "key_id": key_id(), "public_key": public_key(),
                           "value": base64.b64encode(value).decode()}
    return signed
