"""Plain-language summaries of policy versions for compliance reviewers.

    summarize(source, filename)      -> dict: every rule in English, with worked examples
    summarize_many([(source, filename, data)]) -> [dict]: the same, OPA's evaluations shared
    diff(old_summary, new_summary)   -> dict: what changed, in words
    recent_activity(policy, summary) -> dict: deny rate and top reasons of the last 7 days
    summary_for_version(version)     -> dict: summarize() for a saved PolicyVersion, cached
"""
from __future__ import annotations

from datetime import timedelta

from django.utils import timezone
from django.utils.dateparse import parse_datetime

from policies.models import VersionSummary
from policies.summaries import ast, examples, outside, summary
from policies.summaries.diff import diff
from policies.summaries.stats import recent_activity, with_activity

SUMMARY_FORMAT = 3  # bump when the shape changes, so stored summaries can be rebuilt
DATA_RECHECK = timedelta(minutes=5)  # how often a page reads again the data a policy reads outside itself


def summarize(source: str, filename: str, *, with_examples: bool = True, data: dict | None = None,
              data_note: str = "", data_from: str = "", module=None) -> dict:
    """The JSON-serialisable summary of one policy source (see summary.build for the shape).

    With examples, every deny/allow/approval rule gets worked examples that the real OPA
    evaluated, in one `opa eval` for the whole source. `data` is the document rules read
    outside the policy (`data.acme.scopes`): the environment's, or the policy's test data;
    `data_note` says why there is none ("Gavel could not reach the dev environment's OPA to read it"),
    `data_from` where it came from ("the dev environment's OPA"), to say so of a document it lacks.
    `module` is the source already parsed (ast.load), so it is not parsed twice.
    """
    module = module or ast.load(source, filename)
    rules_by_anchor: dict = {}
    result = summary.build(module, rules_by_anchor)
    result["format"] = SUMMARY_FORMAT
    result["filename"] = filename
    if with_examples:
        examples.attach(result, module, source, filename, rules_by_anchor, data=data, data_note=data_note,
                        data_from=data_from)
    else:
        result["examples"] = None
    return result


def summarize_many(items: list) -> list[dict]:
    """summarize() for many (source, filename, data) at once: each policy parsed (and partially
    evaluated) on its own, every worked example of all of them evaluated in ONE `opa eval`."""
    results, pendings = [], []
    for source, filename, data in items:
        module = ast.load(source, filename)
        rules_by_anchor: dict = {}
        result = summary.build(module, rules_by_anchor)
        result["format"] = SUMMARY_FORMAT
        result["filename"] = filename
        pendings.append(examples.Pending(result, module, source, filename, rules_by_anchor, data))
        results.append(result)
    examples.evaluate(pendings)
    for pending in pendings:
        pending.finish()
    return results


def summary_for_version(version) -> dict:
    """The stored summary of a saved version, made (and stored) now if it is missing or stale.

    A policy that reads data outside itself is summarised with that data as the OPA of the version's
    environment holds it (outside.py), read again at most every DATA_RECHECK: the summary is made
    again when the data changed, and kept when OPA cannot be read now.
    """
    stored = VersionSummary.objects.filter(version=version).first()
    if stored is not None and stored.format == SUMMARY_FORMAT:
        kept = stored.data.get("data_source")
        if not kept or not kept.get("paths") or not _due(kept):
            return stored.data
        read = outside.read(version, tuple(tuple(p) for p in kept["paths"]))
        if (read.data is None and kept.get("read")) or (read.digest == kept.get("digest")
                                                         and read.problem == kept.get("problem")):
            stored.data["data_source"].update(outside.checked(timezone.now()))
            VersionSummary.objects.filter(pk=stored.pk).update(data=stored.data)
            return stored.data
        return _store(version, read=read)
    return _store(version)


def _due(kept: dict) -> bool:
    checked = parse_datetime(kept.get("checked_at") or "")
    return checked is None or timezone.now() - checked >= DATA_RECHECK


def _store(version, module=None, read=None) -> dict:
    source, filename = version.source, f"{version.policy.name}.rego"
    module = module or ast.load(source, filename)
    if read is None and module.data_paths:
        read = outside.read(version, module.data_paths)
    data = summarize(source, filename, module=module, data=read.data if read else None,
                     data_note=read.problem if read else "", data_from=read.where if read else "")
    data["data_source"] = read.record(timezone.now()) if read else None
    VersionSummary.objects.update_or_create(version=version, defaults={"format": SUMMARY_FORMAT, "data": data})
    return data


__all__ = ["summarize", "summarize_many", "summary_for_version", "diff", "recent_activity", "with_activity",
           "SUMMARY_FORMAT"]
