#!/usr/bin/env python3
"""Check a Gavel decision export: its manifest's Ed25519 signature, then the file's SHA-256, size and rows.

Stand-alone on purpose: it needs Python 3.9+ and the `cryptography` package, no Gavel and no
database, so an export can be checked by whoever it is handed to. Give it the archive Gavel
downloads (or the data file and its manifest) and Gavel's public key, as shown on Gavel's exports
page (base64, or a file holding it):

    python3 verify_gavel_export.py gavel-export-12.zip --public-key 'q83v...='
    python3 verify_gavel_export.py gavel-decisions-12.csv gavel-decisions-12.csv.manifest.json --public-key key.txt

Exit status: 0 the file is what Gavel signed; 1 it is not (the manifest was edited, signed by
another key, or the file differs from it); 2 it cannot be checked (unreadable or missing files, no
signature, no public key, `cryptography` missing, an export that never finished).
"""
from __future__ import annotations

import argparse
import base64
import binascii
import csv
import hashlib
import io
import json
import os
import sys
import zipfile

GOOD, TAMPERED, CANNOT_CHECK = 0, 1, 2
MANIFEST_SUFFIX = ".manifest.json"


class Cannot(Exception):
    """The export cannot be checked (exit 2)."""


def canonical(manifest: dict) -> bytes:
    """What the signature covers: the manifest without "signature", keys sorted, compact, UTF-8."""
    unsigned = {key: value for key, value in manifest.items() if key != "signature"}
    return json.dumps(unsigned, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def key_id(raw: bytes) -> str:
    return hashlib.sha256(raw).hexdigest()[:16]


def read_public_key(text: str | None) -> bytes:
    if not text:
        raise Cannot("no public key given: pass --public-key with the key shown on Gavel's exports page")
    if os.path.isfile(text):
        with open(text, encoding="utf-8") as handle:
            text = handle.read()
    try:
        raw = base64.b64decode(text.strip(), validate=True)
    except (binascii.Error, ValueError):
        raw = b""
    if len(raw) != 32:
        raise Cannot("the public key is not an Ed25519 key (32 bytes in base64, 44 characters)")
    return raw


def check_signature(manifest: dict, public_raw: bytes) -> list[str]:
    signature = manifest.get("signature")
    if not isinstance(signature, dict) or not signature.get("value"):
        raise Cannot("the manifest is unsigned, so nothing vouches for it")
    if signature.get("algorithm") != "Ed25519":
        raise Cannot(f"the manifest is signed with {signature.get('algorithm')!r}; this checks Ed25519 only")
    try:
        from cryptography.exceptions import InvalidSignature
        from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
    except ImportError:
        raise Cannot("the Python package `cryptography` is needed to check signatures (pip install cryptography)")
    try:
        value = base64.b64decode(str(signature["value"]), validate=True)
    except (binascii.Error, ValueError):
        return ["the manifest's signature is not base64"]
    try:
        Ed25519PublicKey.from_public_bytes(public_raw).verify(value, canonical(manifest))
    except InvalidSignature:
        named = signature.get("key_id")
        if named and named != key_id(public_raw):
            return [f"the manifest is signed by key {named}, not by the given key {key_id(public_raw)}"]
        return ["the signature does not match the manifest: it was changed after Gavel signed it"]
    return []


def count_rows(fmt: str, binary) -> int:
    text = io.TextIOWrapper(binary, encoding="utf-8", newline="")
    if fmt == "csv":
        return max(sum(1 for _ in csv.reader(text)) - 1, 0)  # less the header
    if fmt == "jsonl":
        count = 0
        for number, line in enumerate(text, start=1):
            try:
                json.loads(line)
            except ValueError as exc:
                raise ValueError(f"line {number} is not JSON: {exc}") from None
            count += 1
        return count
    raise Cannot(f"unknown export format {fmt!r}")


def check_data(manifest: dict, open_data) -> list[str]:
    sha, size = hashlib.sha256(), 0
    with open_data() as handle:
        while block := handle.read(1 << 20):
            sha.update(block)
            size += len(block)
    problems = []
    if sha.hexdigest() != manifest.get("sha256"):
        problems.append(f"the file's SHA-256 is {sha.hexdigest()}, the manifest says {manifest.get('sha256')}")
    if size != manifest.get("size_bytes"):
        problems.append(f"the file has {size} bytes, the manifest says {manifest.get('size_bytes')}")
    try:
        with open_data() as handle:
            rows = count_rows(manifest.get("format"), handle)
    except (ValueError, csv.Error) as exc:  # UnicodeDecodeError is a ValueError
        problems.append(f"the file cannot be read as {manifest.get('format')}: {exc}")
    else:
        if rows != manifest.get("row_count"):
            problems.append(f"the file has {rows} rows, the manifest says {manifest.get('row_count')}")
    return problems


def load(paths: list[str]):
    """(manifest, a function opening the data file) from an archive, or from a file and its manifest."""
    if len(paths) == 1:
        try:
            archive = zipfile.ZipFile(paths[0])
        except (OSError, zipfile.BadZipFile) as exc:
            raise Cannot(f"cannot read {paths[0]} as a Gavel export archive: {exc}")
        manifests = [name for name in archive.namelist() if name.endswith(MANIFEST_SUFFIX)]
        if len(manifests) != 1:
            raise Cannot(f"{paths[0]} should hold one *{MANIFEST_SUFFIX}, it holds {len(manifests)}")
        manifest_bytes = archive.read(manifests[0])
        data_name = manifests[0][:-len(MANIFEST_SUFFIX)]
        if data_name not in archive.namelist():
            raise Cannot(f"{paths[0]} holds no {data_name} beside its manifest")
        opener = lambda: archive.open(data_name)  # noqa: E731
    else:
        data_path, manifest_path = paths
        try:
            with open(manifest_path, "rb") as handle:
                manifest_bytes = handle.read()
        except OSError as exc:
            raise Cannot(f"cannot read the manifest: {exc}")
        if not os.path.isfile(data_path):
            raise Cannot(f"no such file: {data_path}")
        opener = lambda: open(data_path, "rb")  # noqa: E731
    try:
        manifest = json.loads(manifest_bytes.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise Cannot(f"the manifest is not JSON: {exc}")
    if not isinstance(manifest, dict) or "gavel_export_manifest" not in manifest:
        raise Cannot("the manifest is not a Gavel export manifest")
    if manifest.get("status") != "done" or not manifest.get("sha256"):
        raise Cannot(f"the export did not finish (status {manifest.get('status')!r}), so there is nothing to check")
    return manifest, opener


def verify(paths: list[str], public_key: str | None) -> tuple[int, list[str], dict | None]:
    """(exit status, what is wrong or why it cannot be checked, the manifest when it was read)."""
    manifest = None
    try:
        manifest, opener = load(paths)
        problems = check_signature(manifest, read_public_key(public_key))
        if not problems:
            problems = check_data(manifest, opener)
    except Cannot as exc:
        return CANNOT_CHECK, [str(exc)], manifest
    except (OSError, zipfile.BadZipFile, EOFError) as exc:
        return CANNOT_CHECK, [f"cannot read the data file: {exc}"], manifest
    return (TAMPERED if problems else GOOD), problems, manifest


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("files", nargs="+", metavar="FILE",
                        help="the export archive (.zip), or the data file and its manifest")
    parser.add_argument("--public-key", default=os.environ.get("GAVEL_EXPORT_PUBLIC_KEY"),
                        help="Gavel's export signing public key (base64) or a file holding it; "
                             "default $GAVEL_EXPORT_PUBLIC_KEY")
    args = parser.parse_args(argv)
    if len(args.files) > 2:
        parser.error("give the archive, or the data file and its manifest")
    status, problems, manifest = verify(args.files, args.public_key)
    if status == GOOD:
        print(f"GOOD: {manifest['file']} is what Gavel signed: {manifest['row_count']} rows, "
              f"sha256 {manifest['sha256']}, exported by {manifest.get('exported_by')} at "
              f"{manifest.get('exported_at')}, signed by key {manifest['signature'].get('key_id')}.")
        print(f"Search: {(manifest.get('filter') or {}).get('readable')}")
    elif status == TAMPERED:
        print("TAMPERED: the export is not what Gavel signed:\n  - " + "\n  - ".join(problems), file=sys.stderr)
    else:
        print("CANNOT CHECK: " + "; ".join(problems), file=sys.stderr)
    return status


if __name__ == "__main__":
    sys.exit(main())
