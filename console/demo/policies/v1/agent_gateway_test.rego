package gavel.agent_gateway_test

import data.gavel.agent_gateway

# An ordinary read by the support bot; each test changes what it is about.
request(changes) := object.union(
	{
		"user": {"id": "u-101", "team": "support"},
		"agent": {"id": "support-bot", "type": "assistant"},
		"tool": "sql.query",
		"action": "read",
		"args": {"query": "SELECT count(*) FROM tickets"},
		"token_budget": 4000,
		"environment": "prod",
		"resource": "db/analytics",
	},
	changes,
)

delete_in_prod := {"tool": "ticket.delete", "action": "delete"}

test_ordinary_read_is_allowed if {
	agent_gateway.decision == {"allow": true, "reasons": [], "require_approval": false} with input as request({})
}

test_input_that_is_not_an_object_is_denied if {
	agent_gateway.deny["input must be a JSON object"] with input as "not an object"
}

test_suspended_user_is_denied if {
	agent_gateway.deny["user u-107 is suspended"] with input as request({"user": {"id": "u-107"}})
}

test_tool_outside_the_agents_allowlist_is_denied if {
	agent_gateway.deny["agent support-bot may not call tool k8s.delete"] with input as request({"tool": "k8s.delete"})
}

test_unknown_agent_is_denied if {
	agent_gateway.deny["agent rogue-bot may not call tool sql.query"] with input as request({"agent": {"id": "rogue-bot"}})
}

test_token_budget_up_to_the_limit_is_allowed if {
	agent_gateway.allow with input as request({"token_budget": 16000})
}

test_token_budget_over_the_limit_is_denied if {
	agent_gateway.deny["token budget 16001 exceeds the limit of 16000"] with input as request({"token_budget": 16001})
}

test_dangerous_argument_is_denied_whatever_its_case if {
	agent_gateway.deny["argument query contains the forbidden pattern \"drop table\""] with input as request({"args": {"query": "Drop TABLE users"}})
}

test_delete_in_production_waits_for_a_reviewer if {
	agent_gateway.decision == {
		"allow": false,
		"reasons": ["ticket.delete on db/analytics in production needs a reviewer's approval"],
		"require_approval": true,
	} with input as request(delete_in_prod)
}

test_delete_in_staging_needs_no_approval if {
	agent_gateway.allow with input as request(object.union(delete_in_prod, {"environment": "staging"}))
}

test_denied_delete_is_denied_not_held if {
	not agent_gateway.require_approval with input as request(object.union(delete_in_prod, {"user": {"id": "u-118"}}))
}
