"""Over every policy in the corpus: what a rule checks is in its summary, in words, and every
deny, allow and approval rule has a triggering and a non-triggering worked example that OPA
confirms. Uses the real opa binary; nothing is mocked. bench/summary_corpus.py writes the same
figures to bench/results/summary_corpus.md."""
import json
from pathlib import Path

import pytest

from policies.summaries import ast
from policies.summaries.figures import figures, has_examples, leftovers, summarize_files
from policies.summaries.phrasing import field_name, humanize
from policies.summaries.summary import all_rules

CORPUS = sorted((Path(__file__).parent / "corpus").glob("*.rego"))
DEMO = sorted(p for p in Path("console/demo/policies").glob("*.rego") if not p.name.endswith("_test.rego"))
# Rules written to use constructs Gavel deliberately does not phrase (an `every` loop).
UNSUPPORTED = {"unsupported_every.rego"}
# Every rule shape issue 19 names, and the policy in the corpus that has it.
SHAPES = {
    "deny contains sprintf(...) if {...}": "tf_s3_encryption.rego",
    "time.clock / time.parse_rfc3339_ns": "api_business_hours.rego",
    "regex.match": "api_paths.rego",
    "startswith": "k8s_privileged.rego",
    "lower": "data_residency.rego",
    "count": "data_columns.rego",
    "object.get": "tf_tags.rego",
    "set operations": "k8s_labels.rego",
    "data outside the policy": "agent_scopes.rego",
    "membership in a list built from the input": "agent_data_classes.rego",
    "a value looked up from another rule by the input's mode": "agent_modes.rego",
    "require_approval contains \"reason\"": "agent_blast_radius.rego",
    "arithmetic over several fields (solved by z3)": "cloud_quota.rego",
}


def test_the_corpus_is_big_enough_and_has_every_shape():
    assert len(CORPUS) >= 30
    names = {p.name for p in CORPUS}
    assert set(SHAPES.values()) <= names


@pytest.fixture(scope="module")
def summaries():
    # Each policy's worked examples are evaluated by the real OPA, in Gavel's sandbox, with the
    # policy's test data (`<name>.data.json`) for rules that read `data`.
    return summarize_files(CORPUS + DEMO)


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
            short = field_name(field).removeprefix("the request's ")  # a blank in a message: "‹user id›"
            assert field_name(field) in text or raw in text or f"‹{short}›" in text, \
                f"{path.name}:{row} does not mention {raw}:\n{text}"
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
            kinds = [e["kind"] for e in rule["examples"]]
            assert kinds == ["triggers", "does_not_trigger"], (rule["anchor"], rule["example_note"])
            assert all(e["agrees"] for e in rule["examples"]), rule["examples"]
            assert has_examples(rule)
            trigger = rule["examples"][0]
            if group["effect"] == "deny":
                assert trigger["statement"].startswith("This request is denied")
            if group["effect"] == "approval":
                assert trigger["statement"].startswith("This request requires approval")
            json.dumps(rule["examples"])


@pytest.mark.parametrize("path", CORPUS + DEMO, ids=lambda p: p.name)
def test_every_rule_is_phrased_without_rego(path, summaries):
    for record in all_rules(summaries[path.name]):
        if path.name in UNSUPPORTED and record["name"] == "all_internal":
            continue  # the `every` loop, shown as written with a note
        assert not leftovers(record), (record["anchor"], record["sentence"])


def test_the_figures_cover_the_whole_corpus(summaries):
    f = figures(summaries)
    assert f["policies"] >= 30 + 3
    assert f["decision_rules"] == f["with_examples"]
    assert f["examples"] == f["agreeing"]
    assert f["rules"] - f["phrased"] == 1  # unsupported_every.rego's `every` loop
    assert [g["rule"] for g in f["gaps"]] == ["rule-all_internal"]


def test_an_approval_rule_with_reasons_reads_as_approval(summaries):
    summary = summaries["agent_blast_radius.rego"]
    approval = next(g for g in summary["groups"] if g["effect"] == "approval")
    assert approval["heading"] == "Requires approval when"
    titles = [r["title"] for r in approval["rules"]]
    assert titles == ["High blast radius tool", "Bulk change"]
    assert not summary["helpers"]
    blast = approval["rules"][0]
    assert blast["sentence"] == "Requires approval when the request's action tool is on the list high impact tools: " \
                                "“db.migrate”, “dns.update”, “k8s.delete”"
    assert blast["examples"][0]["statement"] == "This request requires approval: high blast radius tool."


def test_builtins_and_data_read_as_words(summaries):
    def sentence(name, anchor):
        return next(r for r in all_rules(summaries[name]) if r["anchor"] == anchor)["sentence"]
    assert "the hour of the request's timestamp (as a point in time)" in sentence("api_business_hours.rego", "deny-1")
    assert "the day of the week of the request's timestamp" in sentence("api_business_hours.rego", "allow-1")
    assert "in the data acme › scopes (kept outside this policy)" in sentence("agent_scopes.rego", "allow-1")
    assert "the names in the request's request object metadata labels" in sentence("k8s_labels.rego", "deny-1")
    assert "the request's action data classes referenced" in sentence("agent_data_classes.rego", "deny-1")


def test_unsupported_constructs_fall_back_to_their_rego_with_a_note(summaries):
    summary = summaries["unsupported_every.rego"]
    helper = next(r for r in summary["helpers"] if r["name"] == "all_internal")
    assert helper["conditions"][0]["fallback"] and helper["conditions"][0]["snippet"].startswith("every r in")
    assert helper["conditions"][0]["note"] == ("Gavel cannot put an every loop into words yet; “As written” shows "
                                               "the policy's own text.")
    assert helper["phrased"] is False
    recipients = next(r for r in all_rules(summary) if r["title"] == "Every recipient is internal")
    assert any(p.get("anchor") == "rule-all_internal" for c in recipients["conditions"] for p in c["parts"])
    # The comprehension is phrased now, and OPA's partial evaluation gave it examples.
    attachments = next(r for r in all_rules(summary) if r["title"] == "Too many attachments")
    assert attachments["phrased"] and "the number of ‘a’ in the request's attachments where" in \
        attachments["sentence"]
    assert len(attachments["examples"][0]["input"]["attachments"]) == 6


def test_the_summary_is_json(summaries):
    for summary in summaries.values():
        assert json.loads(json.dumps(summary)) == summary
