"""The plain-language diff between two versions."""
from pathlib import Path

from policies.summaries import diff, summarize

SOURCE = (Path(__file__).parent / "corpus" / "token_budget.rego").read_text()


def test_a_changed_threshold_reads_as_new_and_was():
    before = summarize(SOURCE, "token_budget.rego", with_examples=False)
    after = summarize(SOURCE.replace("max_tokens := 50000", "max_tokens := 10000"), "token_budget.rego",
                      with_examples=False)
    changes = diff(before, after)
    assert [c["text"] for c in changes["rules"]] == [
        "The rule “Token budget” now denies when the request's token budget is more than 10,000 (was 50,000) "
        "(max tokens)."]
    assert changes["lists"] == ["Max tokens is now 10,000 (was 50,000)."]
    assert changes["unchanged"] == 1


def test_added_and_removed_rules():
    before = summarize(SOURCE, "token_budget.rego", with_examples=False)
    extra = SOURCE + '\n# METADATA\n# title: Budget floor\ndeny contains "budget too small" if input.token_budget < 10\n'
    after = summarize(extra, "token_budget.rego", with_examples=False)
    added = diff(before, after)["rules"]
    assert [c["kind"] for c in added] == ["added"]
    assert added[0]["text"] == ("Added the rule “Budget floor”: denies when the request's token budget is less "
                                "than 10.")
    removed = diff(after, before)["rules"]
    assert removed[0]["text"].startswith(
        "Removed the rule “Budget floor”: no longer denies when the request's token budget is less than 10")
