"""Issue 19's wording defects, each read as the sentence a compliance officer sees."""
import re
from pathlib import Path

import pytest
from django.utils import timezone

from core.models import Outcome
from fleet.models import Environment
from policies import services
from policies.models import ActiveVersion
from policies.summaries import diff, summarize
from policies.summaries.summary import all_rules
from tests.factories import DecisionFactory

DEMO = Path("console/demo/policies/agent_gateway.rego").read_text()
TOKEN_BUDGET = (Path(__file__).parent / "corpus" / "token_budget.rego").read_text()


@pytest.fixture(scope="module")
def gateway_summary():
    return summarize(DEMO, "agent_gateway.rego")


def _rule(summary, title):
    return next(r for r in all_rules(summary) if r["title"] == title)


def test_examples_print_values_not_the_policy_s_question_mark_default(gateway_summary):
    unlisted = next(r for r in all_rules(gateway_summary) if (r["message"] or {}).get("template", "").startswith(
        "agent %v may not call tool"))
    statement = unlisted["examples"][0]["statement"]
    assert statement == "This request is denied: agent id-1 may not call tool tool-1."
    for record in all_rules(gateway_summary):
        for example in record["examples"]:
            assert not re.search(r"(^|\s)\?(\s|\.|$)", example["statement"]), example["statement"]


def test_the_does_not_apply_example_is_not_denied_by_another_rule(gateway_summary):
    well_formed = _rule(gateway_summary, "Well-formed input")
    assert [e["statement"] for e in well_formed["examples"]] == [
        "This request is denied: input must be a JSON object.", "No deny rule applies to this request."]


def test_a_reason_names_its_blank_instead_of_reading_it_into_the_sentence(gateway_summary):
    suspended = next(r for r in all_rules(gateway_summary) if (r["message"] or {}).get("template") ==
                     "user %s is suspended")
    assert suspended["message"]["text"] == "user ‹user id› is suspended"


def test_a_decision_object_reads_as_what_it_is_made_of(gateway_summary):
    decision = _rule(gateway_summary, "Agent gateway decision")
    assert decision["sentence"] == ("Agent gateway decision is made of allow, from “Allow”; reasons, from "
                                    "“reasons”; and require approval, from “Require approval”")
    assert "an object with" not in decision["sentence"] and " = " not in decision["sentence"]


def test_the_diff_names_the_rule_that_changed():
    before = summarize(TOKEN_BUDGET, "token_budget.rego", with_examples=False)
    after = summarize(TOKEN_BUDGET.replace("max_tokens := 50000", "max_tokens := 10000"), "token_budget.rego",
                      with_examples=False)
    (change,) = diff(before, after)["rules"]
    assert change["text"] == ("The rule “Token budget” now denies when the request's token budget is more than "
                              "10,000 (was 50,000) (max tokens).")
    assert "New:" not in change["text"]


def test_a_rule_that_reads_data_gavel_was_not_given_says_so_in_words():
    source = (Path(__file__).parent / "corpus" / "agent_scopes.rego").read_text()
    summary = summarize(source, "agent_scopes.rego")  # without the policy's test data
    for record in all_rules(summary):
        assert record["examples"] == []
        assert record["example_note"].endswith(
            "It reads data kept outside the policy (acme › scopes), and Gavel was given none for this version.")


@pytest.mark.django_db
class TestThePage:
    @pytest.fixture
    def gateway(self, make_user):
        return services.create_policy(name="agent_gateway", title="AI agent gateway", source=DEMO,
                                      author=make_user("policy_author"), message="Initial version")

    def test_rule_counts_agree_with_their_verb(self, client, make_user, gateway):
        client.force_login(make_user("compliance_officer"))
        html = client.get("/policies/agent_gateway/v1/summary/").content.decode()
        assert "5 rules that deny · 1 rule that requires approval · 1 rule that allows" in html
        assert "1 rule that require approval" not in html and "1 rule that allow " not in html

    def test_a_policy_published_nowhere_is_enforced_nowhere(self, client, make_user, gateway):
        Environment.objects.default()  # the environment exists; the policy was never published to it
        client.force_login(make_user("compliance_officer"))
        html = client.get("/policies/agent_gateway/v1/summary/").content.decode()
        assert "Not published in any environment yet, so nothing enforces it." in html
        assert "enforced for everyone" not in html

        ActiveVersion.objects.create(policy=gateway, environment=Environment.objects.default(),
                                     version=gateway.latest_version, since=timezone.now())
        html = client.get("/policies/agent_gateway/v1/summary/").content.decode()
        assert "enforced for everyone." in html and "Not published in any environment" not in html

    def test_top_reasons_under_the_deny_rate_are_denials_only(self, client, make_user, gateway):
        for _ in range(3):
            DecisionFactory(policy=gateway, outcome=Outcome.REQUIRE_APPROVAL,
                            reasons=["ticket.delete on db/tickets in production needs a reviewer's approval"])
        DecisionFactory(policy=gateway, outcome=Outcome.DENY, reasons=["user u-107 is suspended"])
        client.force_login(make_user("compliance_officer"))
        html = client.get("/policies/agent_gateway/v1/summary/").content.decode()
        assert "25.0%</strong> of 4 decisions were denials." in html
        table = html.split("Top reasons for denials", 1)[1].split("</table>", 1)[0]
        assert "user u-107 is suspended" in table and "needs a reviewer" not in table


SLOW_DENY = """package slow_rules

# Nine million pairs, for nothing: OPA needs many seconds for this rule whatever the request.
deny contains "the tool is refused after a long count" if {
	input.tool == "export"
	count({[a, b] | some a in numbers.range(1, 3000); some b in numbers.range(1, 3000); a * b == 7}) > 5
}

deny contains "the tool is not known" if not input.tool in {"export", "search"}
"""


def test_examples_opa_cannot_check_in_time_are_left_out_and_the_summary_says_why(settings):
    settings.GAVEL_EXAMPLES_SECONDS = 2  # the author waits for the save: a slow rule must not hold it
    summary = summarize(SLOW_DENY, "slow_rules.rego")
    assert summary["examples"]["error"] == (
        "OPA could not evaluate the examples: OPA took longer than 2 seconds on this Rego, the limit Gavel "
        "sets for evaluating authors' Rego")
    assert [r["examples"] for r in all_rules(summary)] == [[], []]
    assert [r["phrased"] for r in all_rules(summary)] == [True, True]  # the prose does not wait on OPA
