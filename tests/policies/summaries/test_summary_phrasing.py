"""How individual constructs read. Each summary is made from OPA's own parse of the source."""
from pathlib import Path

import pytest

from policies.summaries import summarize
from policies.summaries.summary import all_rules

CORPUS = Path(__file__).parent / "corpus"


def summary_of(name):
    return summarize((CORPUS / name).read_text(), name, with_examples=False)


def rule(summary, title):
    return next(r for r in all_rules(summary) if r["title"] == title)


def texts(record):
    return [c["text"] for c in record["conditions"]]


def test_defaults_are_stated():
    summary = summary_of("approval_deletes.rego")
    statements = [d["text"] for d in summary["defaults"]]
    assert "Anything not explicitly allowed is denied." in statements
    assert "No approval is needed unless a rule below requires it." in statements


def test_sets_defined_in_the_policy_are_listed_by_value():
    blocked = rule(summary_of("blocked_users.rego"), "Blocked users")
    assert texts(blocked) == [
        "the request's user id is on the list blocked users: “blocked_user”, “suspended_account”, “u-107”"]
    assert blocked["message"]["text"] == "user ‹user id› is blocked"


def test_limits_read_as_numbers_with_metadata():
    budget = rule(summary_of("token_budget.rego"), "Token budget")
    assert texts(budget) == ["the request's token budget is more than 50,000 (max tokens)"]
    assert budget["severity"] == "medium"
    assert budget["description"] == "One request may not ask for more tokens than the budget."
    assert budget["sentence"] == "Denies when the request's token budget is more than 50,000 (max tokens)"


def test_builtins_read_as_words():
    queries = rule(summary_of("dangerous_queries.rego"), "Dangerous query")
    assert texts(queries) == [
        "for some ‘pattern’ in dangerous patterns: “password”, “drop table”, “rm -rf”",
        "the request's query in lower case contains ‘pattern’",
    ]
    assert texts(rule(summary_of("dangerous_queries.rego"), "Shell escapes")) == [
        "the request's query starts with “!”"]
    length = rule(summary_of("model_access.rego"), "Conversation length")
    assert texts(length) == ["the number of entries in the request's messages is more than 40 (max messages)"]
    injection = rule(summary_of("prompt_injection.rego"), "Prompt injection")
    assert "matches the pattern" in texts(injection)[0]


def test_negation_is_stated_and_says_when_a_missing_field_counts():
    private = rule(summary_of("prompt_injection.rego"), "System prompt stays private")
    # `not input.user.role == "admin"` also holds when there is no role at all...
    assert "the request's user role is not “admin” (or is missing)" in texts(private)
    # ...while OPA evaluates a negated function's field first, so a missing model never matches.
    families = rule(summary_of("model_access.rego"), "Approved model families")
    assert texts(families)[0] == "the request's model does not start with “gpt-” (and is present)"


def test_helpers_are_linked_not_inlined():
    summary = summary_of("user_provisioning.rego")
    admin = rule(summary, "Admin roles need a ticket")
    assert "the check “has ticket” does not pass" in texts(admin)
    links = [p for c in admin["conditions"] for p in c["parts"] if p["t"] == "link"]
    assert links[0]["anchor"] == "rule-has_ticket"
    helper = next(r for r in summary["helpers"] if r["anchor"] == "rule-has_ticket")
    assert "matches the pattern" in helper["conditions"][0]["text"]


def test_count_of_deny_reads_as_no_deny_rule_applies():
    allow = summary_of("rate_limits.rego")["groups"][-1]["rules"][0]
    assert allow["effect"] == "allow"
    assert texts(allow)[0] == "no deny rule applies"


@pytest.mark.parametrize("name", ["agent_gateway.rego", "platform_changes.rego"])
def test_demo_policies_are_fully_phrased(name):
    summary = summarize(Path("console/demo/policies", name).read_text(), name, with_examples=False)
    assert summary["unphrased"] == 0
