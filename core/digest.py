"""SHA-256 of text, as hex: versions' sources and the tokens Gavel keeps only hashed."""
import hashlib


def sha256_of(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()
