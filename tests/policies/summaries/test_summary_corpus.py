"""Over every policy in the corpus: what a rule checks is in its summary, and OPA agrees
with every worked example. Uses the real opa binary; nothing is mocked."""
import base64
import json
from pathlib import Path

import pytest

from policies.summaries import ast, summarize
from policies.summaries.phrasing import field_name, humanize
from policies.summaries.summary import all_rules

CORPUS = sorted((Path(__file__).parent / "corpus").glob("*.rego"))
DEMO = sorted(Path("console/demo/policies").glob("*.rego"))
# Rules written to use constructs Gavel deliberately does not phrase or evaluate.
UNSUPPORTED = {"unsupported_every.rego"}
# Rules over every resource of a Terraform plan (`some r in input.resource_changes`) get no worked
# example yet: issue 19's example builder. Their summaries and OPA agreement are still checked.
NO_EXAMPLES_YET = {"provisioning.rego"}


def test_the_corpus_is_big_enough():
    assert len(CORPUS) >= 15


@pytest.fixture(scope="module")
def summaries():
    return {path.name: summarize(path.read_text(), path.name) for path in CORPUS + DEMO}


def _checked_by(node, constants: set) -> tuple[set, set]:
    """Input paths and policy constants one rule reads, straight from OPA's JSON (not Gavel's tree)."""
    fields, consts = set(), set()

    def walk(t):
        if isinstance(t, dict):
            if t.get("type") == "ref" and t["value"][0] == {"type": "var", "value": "input"} or (
                    t.get("type") == "ref" and t["value"][0].get("value") == "input"):
                path = []
                for seg in t["value"][1:]:
                    if seg.get("type") != "string":
                        break
                    path.append(seg["value"])
                if path:
                    fields.add(tuple(path))
            if t.get("type") == "call" and t["value"][0]["value"][0]["value"] == "object" and \
                    t["value"][0]["value"][1]["value"] == "get" and t["value"][1].get("value") == "input":
                key = t["value"][2]
                fields.add(tuple(k["value"] for k in key["value"]) if key["type"] == "array" else (key["value"],))
            if t.get("type") == "var" and t.get("value") in constants:
                consts.add(t["value"])
            for v in t.values():
                walk(v)
        elif isinstance(t, list):
            for v in t:
                walk(v)

    walk(node.get("body"))
    walk(node["head"].get("key"))
    return fields, consts


def _rule_text(record) -> str:
    bits = [record.get("snippet") or "", (record.get("message") or {}).get("text") or ""]
    bits += [c["text"] for c in record["conditions"]]
    bits += [c["snippet"] or "" for c in record["conditions"]]
    bits += [(record.get("value") or {}).get("text") or ""]
    return "\n".join(bits)


@pytest.mark.parametrize("path", CORPUS + DEMO, ids=lambda p: p.name)
def test_every_field_and_constant_a_rule_checks_is_in_its_summary(path, summaries):
    source = path.read_text()
    parsed = ast.parse(source, path.name)
    summary = summaries[path.name]
    constants = {c["name"] for c in summary["constants"]}
    by_row = {r["row"]: r for r in all_rules(summary)}
    checked = 0
    for node in parsed["rules"]:
        row = node["location"]["row"]
        if row not in by_row:  # defaults and constants are listed on their own
            continue
        record = by_row[row]
        text = _rule_text(record)
        fields, consts = _checked_by(node, constants)
        for field in fields:
            raw = "input." + ".".join(field)
            assert field_name(field) in text or raw in text, f"{path.name}:{row} does not mention {raw}:\n{text}"
            assert ".".join(field) in record["fields"]
        for const in consts:
            assert humanize(const) in text or const in text, f"{path.name}:{row} does not mention {const}:\n{text}"
        checked += 1
    assert checked


@pytest.mark.parametrize("path", CORPUS + DEMO, ids=lambda p: p.name)
def test_worked_examples_agree_with_opa_for_every_rule(path, summaries):
    summary = summaries[path.name]
    assert summary["examples"]["error"] is None
    assert summary["examples"]["disagree"] == 0
    for group in summary["groups"]:
        for rule in group["rules"]:
            if path.name in UNSUPPORTED or (path.name in NO_EXAMPLES_YET and not rule["examples"]):
                continue
            kinds = [e["kind"] for e in rule["examples"]]
            assert kinds == ["triggers", "does_not_trigger"], (rule["anchor"], rule["example_note"])
            assert all(e["agrees"] for e in rule["examples"]), rule["examples"]
            trigger = rule["examples"][0]
            if group["effect"] == "deny":
                assert trigger["statement"].startswith("This request is denied")
            json.dumps(rule["examples"])


def test_unsupported_constructs_fall_back_to_their_rego_with_a_note(summaries):
    summary = summaries["unsupported_every.rego"]
    attachments = next(r for r in all_rules(summary) if r["title"] == "Too many attachments")
    (condition,) = attachments["conditions"]
    assert condition["fallback"] and "count([a | some a in input.attachments" in condition["snippet"]
    assert "cannot phrase" in condition["note"]
    assert attachments["phrased"] is False
    # No made-up example for a rule Gavel cannot evaluate: it says so instead.
    assert attachments["examples"] == [] and "could not build" in attachments["example_note"]

    helper = next(r for r in summary["helpers"] if r["name"] == "all_internal")
    assert helper["conditions"][0]["fallback"] and helper["conditions"][0]["snippet"].startswith("every r in")
    recipients = next(r for r in all_rules(summary) if r["title"] == "Every recipient is internal")
    assert any(p.get("anchor") == "rule-all_internal" for c in recipients["conditions"] for p in c["parts"])


def test_the_summary_is_json(summaries):
    for summary in summaries.values():
        assert json.loads(json.dumps(summary)) == summary
