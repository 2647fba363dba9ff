"""Reading the files `gavel check` is given: JSON (a Terraform plan from `terraform show -json`)
or YAML, several documents to a file (Kubernetes manifests, `---` between them)."""
from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import yaml


STDIN = "-"


class UnreadableFile(ValueError):
    """A file that is missing or is neither JSON nor YAML: the message names it and why."""


def _text(path: str) -> str:
    try:
        return sys.stdin.read() if path == STDIN else Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise UnreadableFile(f"{path}: cannot be read ({exc})") from exc


def read(path: str) -> list[dict[str, Any]]:
    """[{"file": path, "input": document}, ...], one per document in the file (`-`: standard input,
    JSON or YAML, as in `terraform show -json tfplan | gavel check - --env staging`)."""
    text = _text(path)
    if path == STDIN:
        try:
            return [{"file": path, "input": json.loads(text)}]
        except ValueError:
            pass  # then YAML
    if path.endswith(".json"):
        try:
            return [{"file": path, "input": json.loads(text)}]
        except ValueError as exc:
            raise UnreadableFile(f"{path}: not valid JSON ({exc})") from exc
    try:
        documents = [d for d in yaml.safe_load_all(text) if d is not None]
    except yaml.YAMLError as exc:
        raise UnreadableFile(f"{path}: neither JSON nor YAML ({exc})") from exc
    if not documents:
        raise UnreadableFile(f"{path}: holds no document")
    return [{"file": path, "input": json.loads(json.dumps(d, default=str))} for d in documents]


def read_all(paths: list[str]) -> list[dict[str, Any]]:
    return [document for path in paths for document in read(path)]
