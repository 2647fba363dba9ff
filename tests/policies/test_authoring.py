"""Authoring without saving: the editor's check (a draft's errors at their lines) and the playground
(any input against a draft or a saved version, in Gavel's sandboxed OPA), and the numbered source."""
import json

import pytest

from core.models import Outcome
from policies.authoring import check, playground
from tests.factories import DecisionFactory, PolicyFactory

pytestmark = pytest.mark.django_db

GATEWAY = """package gavel.{name}

allowed_tools := {{"search", "read"}}

default allow := false

# METADATA
# title: Unknown tools are refused
deny contains sprintf("tool %s is not allowed", [input.tool]) if {{
	not input.tool in allowed_tools
}}

deny contains "suspended users may do nothing" if {{
	input.user.suspended
}}

allow if count(deny) == 0
"""

TESTS = """package gavel.{name}_test

import data.gavel.{name}

test_search_allowed if {name}.allow with input as {{"tool": "search", "user": {{}}}}

test_delete_allowed if {name}.allow with input as {{"tool": "delete", "user": {{}}}}
"""


@pytest.fixture
def author(client, make_user):
    client.force_login(make_user("policy_author"))
    return client


def test_a_compile_error_is_located_at_its_line():
    report = check.check_draft("package gavel.x\n\nallow if {\n\tinput.user ==\n}\n")
    assert not report.compiled
    [error] = [d for d in report.diagnostics if d.severity == "error"]
    assert error.target == "source" and error.row in (4, 5) and error.message
    assert report.verdict == "OPA could not compile this: 1 error."


def test_lint_warnings_and_failing_tests_are_located_and_read_without_backticks():
    policy = PolicyFactory(name="gw", source=GATEWAY.format(name="gw"))
    source = GATEWAY.format(name="gw").replace("default allow := false\n", "")
    report = check.check_draft(source, TESTS.format(name="gw"), policy=policy)
    assert report.compiled and report.tests_total == 2 and report.tests_failed == 1
    warning = next(d for d in report.diagnostics if d.severity == "warning")
    assert warning.target == "source" and warning.row == 16 and "`" not in warning.message
    assert "“allow” has no default" in warning.message
    failing = next(d for d in report.diagnostics if d.target == "tests")
    assert failing.row == 7 and failing.message.startswith("test_delete_allowed fails")
    assert report.verdict == "Compiles, 1 of 2 tests pass, 1 lint warning."


def test_a_draft_of_another_package_is_refused_at_its_package_line():
    policy = PolicyFactory(name="gw2", source=GATEWAY.format(name="gw2"))
    report = check.check_draft("# a comment\npackage gavel.other\n\ndefault allow := false\n", policy=policy)
    [error] = report.diagnostics
    assert (error.row, error.severity) == (2, "error") and "gavel.other" in error.message


def test_the_check_endpoint_answers_json_to_authors_only(author, client, make_user):
    PolicyFactory(name="gw3", source=GATEWAY.format(name="gw3"))
    answer = author.post("/policies/draft/check/", {"source": "package gavel.gw3\n\nallow if {\n", "policy": "gw3"})
    assert answer.status_code == 200
    body = answer.json()
    assert body["compiled"] is False and body["diagnostics"][0]["target"] == "source"
    assert body["diagnostics"][0]["row"] >= 3
    client.force_login(make_user("compliance_officer"))
    assert client.post("/policies/draft/check/", {"source": "package x"}).status_code == 403


def test_the_playground_names_the_rule_that_decided_in_words(author):
    PolicyFactory(name="gw4", source=GATEWAY.format(name="gw4"))
    draft = GATEWAY.format(name="gw4")
    page = author.post("/policies/gw4/playground/", {"against": "draft", "source": draft,
                                                     "input": json.dumps({"tool": "delete", "user": {}})},
                       HTTP_HX_REQUEST="true")
    result = page.context["result"]
    assert result.outcome == Outcome.DENY and result.reasons == ["tool delete is not allowed"]
    assert [(r.name, r.row, r.title) for r in result.deciding] == [("deny", 9, "Unknown tools are refused")]
    # Only rules that held: not the constant, not the default, not the deny that did not hold.
    assert [r.row for r in result.fired] == [9]
    assert result.sentences and result.sentences[0].startswith("Denies when")
    body = page.content.decode()
    assert "<html" not in body and "Decided by" in body and "Unknown tools are refused" in body


def test_the_playground_evaluates_a_saved_version_and_an_allowed_input(author):
    policy = PolicyFactory(name="gw5", source=GATEWAY.format(name="gw5"))
    result = playground.evaluate(policy, policy.latest_version.source, '{"tool": "search", "user": {}}',
                                 version=policy.latest_version)
    # The verdict is read from the deny set, as the entrypoint reads it: nothing denied, so allowed.
    assert result.outcome == Outcome.ALLOW and result.deciding == []
    assert result.sentences == ["No rule that denies or requires approval held for this input."]
    page = author.post("/policies/gw5/playground/", {"against": "1", "source": "ignored",
                                                     "input": '{"tool": "read", "user": {"suspended": true}}'})
    assert page.context["result"].reasons == ["suspended users may do nothing"]


@pytest.mark.parametrize("text, says", [("", "Give an input"), ("{not json", "not JSON"),
                                        ("[" * 10 + "]" * 9, "not JSON")])
def test_the_playground_says_what_is_wrong_with_the_input(author, text, says):
    PolicyFactory(name="gw6", source=GATEWAY.format(name="gw6"))
    page = author.post("/policies/gw6/playground/", {"against": "draft", "source": GATEWAY.format(name="gw6"),
                                                     "input": text or " "})
    assert says in page.content.decode()


def test_the_playground_says_a_draft_does_not_compile(author):
    PolicyFactory(name="gw7", source=GATEWAY.format(name="gw7"))
    page = author.post("/policies/gw7/playground/", {"against": "draft", "source": "package gavel.gw7\nallow if {",
                                                     "input": "{}"})
    assert "OPA could not compile the draft" in page.content.decode()


def test_a_decisions_input_is_brought_to_the_playground(author):
    policy = PolicyFactory(name="gw8", source=GATEWAY.format(name="gw8"))
    decision = DecisionFactory(policy=policy, version=policy.latest_version, input={"tool": "<b>drop</b>", "user": {}})
    page = author.get(f"/policies/gw8/playground/?decision={decision.decision_id}&row={decision.pk}")
    form = page.context["form"]
    assert json.loads(form.initial["input"]) == {"tool": "<b>drop</b>", "user": {}}
    assert form.initial["source"] == policy.latest_version.source
    body = page.content.decode()
    assert "<b>drop</b>" not in body and "version 1, which decided it" in body
    detail = author.get(f"/audit/{decision.decision_id}/").content.decode()
    assert f"/policies/gw8/playground/?decision={decision.decision_id}&amp;row={decision.pk}" in detail


def test_the_version_page_numbers_its_source_lines(author):
    source = GATEWAY.format(name="gw9").replace("default allow := false\n", "")
    PolicyFactory(name="gw9", source=source)
    body = author.get("/policies/gw9/v1/").content.decode()
    assert body.count('<li id="source-L') == len(source.rstrip("\n").split("\n"))
    assert '<li id="source-L16" class="marked">' in body  # the lint warning's line
    assert '<a href="#source-L16">line 16</a>: <code>allow</code> has no default' in body
