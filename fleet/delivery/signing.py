"""Bundles signed in OPA's own format, so an OPA activates only what this Gavel built.

A signed bundle carries `.signatures.json`: `{"signatures": [<one JWT>]}`. The JWT's payload lists
every other file of the bundle with its SHA-256 (`{"name", "hash", "algorithm": "SHA-256"}`); its
header names the key (`kid`). OPA checks the JWT against the public key configured under `keys`
and refuses a bundle whose file is missing from the list, whose content does not hash to what is
listed, or that lists a file the bundle lacks. `.manifest` and `data.json` are hashed the way OPA
hashes structured files: parsed, then written back with keys sorted and nothing between tokens
(`structured_bytes`), so whitespace does not matter; anything else is hashed as its raw bytes.

The key is GAVEL_BUNDLE_SIGNING_KEY (settings; kept like SECRET_KEY): 32 random bytes in base64,
from which the P-256 private key is derived, so it is generated and kept like the export key.
The algorithm is ES256 with deterministic ECDSA (RFC 6979): the same files always give the same
signature, so the same content keeps the same bytes and ETag and OPAs do not download it again.
"""
from __future__ import annotations

import base64
import hashlib
import json
from functools import lru_cache

from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from django.conf import settings
from jwt import PyJWS
from jwt.algorithms import ECAlgorithm
from jwt.utils import der_to_raw_signature

ALGORITHM = "ES256"
HASH = "SHA-256"
KEY_ID = "gavel"  # the name OPA's configuration gives the key: keys.gavel, bundles.<name>.signing.keyid
SIGNATURES_FILE = ".signatures.json"
STRUCTURED = {".manifest", "data.json"}  # the files of Gavel's bundles OPA parses before hashing
P256_ORDER = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551


class _DeterministicES256(ECAlgorithm):
    """PyJWT's ES256 with RFC 6979 nonces: the same message always gets the same signature."""

    def sign(self, msg: bytes, key: ec.EllipticCurvePrivateKey) -> bytes:
        der = key.sign(msg, ec.ECDSA(self.hash_alg(), deterministic_signing=True))
        return der_to_raw_signature(der, key.curve)


_jws = PyJWS(algorithms=[])
_jws.register_algorithm(ALGORITHM, _DeterministicES256(ECAlgorithm.SHA256))


@lru_cache(maxsize=4)
def private_key_from(seed_b64: str) -> ec.EllipticCurvePrivateKey:
    """The P-256 key of a 32-byte seed (base64): the seed as a number, brought into [1, n-1]."""
    seed = int.from_bytes(base64.b64decode(seed_b64), "big")
    return ec.derive_private_key(seed % (P256_ORDER - 1) + 1, ec.SECP256R1())


def _key() -> ec.EllipticCurvePrivateKey:
    return private_key_from(settings.GAVEL_BUNDLE_SIGNING_KEY)


def public_key_pem(seed_b64: str | None = None) -> str:
    """The public key OPA verifies with, as PEM (what goes under keys.gavel.key)."""
    key = private_key_from(seed_b64) if seed_b64 else _key()
    return key.public_key().public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo).decode()


def fingerprint() -> str:
    """A short name for the public key, to compare with what an OPA was configured with."""
    der = _key().public_key().public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)
    return hashlib.sha256(der).hexdigest()[:16]


def structured_bytes(value) -> bytes:
    """What OPA hashes for a JSON document: keys sorted, compact, UTF-8, no HTML escaping. Go's
    encoder also writes U+2028 and U+2029 escaped; Python leaves them, so they are escaped here
    (they can only occur inside strings)."""
    text = json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return text.replace("\u2028", "\\u2028").replace("\u2029", "\\u2029").encode()


def file_hash(name: str, data: bytes) -> str:
    content = structured_bytes(json.loads(data)) if name.rsplit("/", 1)[-1] in STRUCTURED else data
    return hashlib.sha256(content).hexdigest()


def signatures_file(files: dict[str, bytes], seed_b64: str | None = None) -> bytes:
    """`.signatures.json` for these files (names without a leading slash, content as written)."""
    listed = [{"name": name, "hash": file_hash(name, data), "algorithm": HASH} for name, data in sorted(files.items())]
    payload = json.dumps({"files": listed}, sort_keys=True, separators=(",", ":")).encode()
    key = private_key_from(seed_b64) if seed_b64 else _key()
    token = _jws.encode(payload, key, algorithm=ALGORITHM, headers={"kid": KEY_ID})
    return json.dumps({"signatures": [token]}).encode()


def keys_yaml() -> str:
    """The `keys` section of an OPA's configuration (YAML) with Gavel's public key."""
    key = "\n".join(f"        {line}" for line in public_key_pem().strip().splitlines())
    return f"keys:\n  {KEY_ID}:\n    algorithm: {ALGORITHM}\n    key: |\n{key}\n"


def opa_config(environment_name: str, gavel_api_url: str, bucket: dict | None = None) -> str:
    """The block an OPA of a pull environment is configured with: Gavel's service (status reports,
    decision logs and, without `bucket`, the bundle), the environment's bundle with a signature
    required, and Gavel's key. `bucket` ({"url", "resource", "region"}, storage.py): the bundle
    comes from object storage instead, with OPA's S3 signing."""
    service, resource = "gavel", f"bundles/{environment_name}"
    bucket_service = ""
    if bucket:
        service, resource = "gavel_bucket", bucket["resource"]
        bucket_service = f"""\
  gavel_bucket:
    url: {bucket["url"]}
    credentials:
      s3_signing:
        profile_credentials:   # a read-only key: [gavel] aws_access_key_id = ..., aws_secret_access_key = ...
          path: /etc/opa/s3-credentials
          profile: gavel
          aws_region: {bucket["region"]}
"""
    return f"""\
services:
  gavel:
    url: {gavel_api_url}
    credentials: {{bearer: {{token_path: /etc/opa/gavel-token}}}}   # the instance's own token
{bucket_service}bundles:
  {environment_name}:
    service: {service}
    resource: {resource}
    signing: {{keyid: {KEY_ID}}}   # refuse a bundle this key did not sign
status: {{service: gavel}}
decision_logs: {{service: gavel}}
""" + keys_yaml()


def keys_config() -> dict:
    """The `keys` section of an OPA's configuration, as a dict (tests, `manage.py opa_authz`)."""
    return {KEY_ID: {"algorithm": ALGORITHM, "key": public_key_pem()}}
