"""Plain-language summaries of policy versions for compliance reviewers.

    summarize(source, filename)      -> dict: every rule in English, with worked examples
    summarize_many([(source, filename, data)]) -> [dict]: the same, OPA's evaluations shared
    diff(old_summary, new_summary)   -> dict: what changed, in words
    recent_activity(policy, summary) -> dict: deny rate and top reasons of the last 7 days
    summary_for_version(version)     -> dict: summarize() for a saved PolicyVersion, cached
"""
from __future__ import annotations

from policies.models import VersionSummary
from policies.summaries import ast, examples, summary
from policies.summaries.diff import diff
from policies.summaries.stats import recent_activity, with_activity

SUMMARY_FORMAT = 2  # bump when the shape changes, so stored summaries can be rebuilt


def summarize(source: str, filename: str, *, with_examples: bool = True, data: dict | None = None) -> dict:
    """The JSON-serialisable summary of one policy source (see summary.build for the shape).

    With examples, every deny/allow/approval rule gets worked examples that the real OPA
    evaluated, in one `opa eval` for the whole source. `data` is the document rules read
    outside the policy (`data.acme.scopes`): the environment's, or the policy's test data.
    """
    module = ast.load(source, filename)
    rules_by_anchor: dict = {}
    result = summary.build(module, rules_by_anchor)
    result["format"] = SUMMARY_FORMAT
    result["filename"] = filename
    if with_examples:
        examples.attach(result, module, source, filename, rules_by_anchor, data=data)
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
    """The stored summary of a saved version, made (and stored) now if it is missing or stale."""
    stored = VersionSummary.objects.filter(version=version).first()
    if stored is not None and stored.format == SUMMARY_FORMAT:
        return stored.data
    data = summarize(version.source, f"{version.policy.name}.rego")
    VersionSummary.objects.update_or_create(version=version, defaults={"format": SUMMARY_FORMAT, "data": data})
    return data


__all__ = ["summarize", "summarize_many", "summary_for_version", "diff", "recent_activity", "with_activity",
           "SUMMARY_FORMAT"]
