# Demo policy: the gateway asks this package before an AI agent runs a tool
# on a user's behalf. Query data.gavel.agent_gateway.decision.
#
# Input:
#   {"user": {"id": "u-101", "team": "support"},
#    "agent": {"id": "support-bot", "type": "assistant"},
#    "tool": "sql.query", "action": "read" | "write" | "delete",
#    "args": {"query": "..."}, "token_budget": 4000,
#    "environment": "prod" | "staging", "resource": "db/tickets"}
package gavel.agent_gateway

# Accounts suspended by security; their agents act for nobody.
blocked_users := {"u-107", "u-118", "u-126", "u-133"}

# The tools each agent may call. Anything else is refused.
agent_tools := {
	"support-bot": {"kb.search", "ticket.read", "ticket.update", "ticket.delete", "sql.query"},
	"billing-agent": {"invoice.read", "invoice.refund", "sql.query"},
	"devops-copilot": {"logs.search", "k8s.get", "k8s.delete", "deploy.rollback"},
	"data-analyst": {"sql.query", "warehouse.export", "chart.render"},
	"hr-assistant": {"directory.lookup", "calendar.read"},
}

# Tokens of context one call may spend.
max_token_budget := 16000

# Lower-case fragments that never belong in tool arguments.
dangerous_patterns := ["password", "drop table"]

default allow := false

default require_approval := false

# METADATA
# title: Agent gateway decision
# description: The one answer the gateway reads - allow, the reasons for a refusal, and whether a human must approve first.
decision := {"allow": allow, "reasons": reasons, "require_approval": require_approval}

# Why the call was refused or held: the deny messages, or why a person must approve.
reasons := sort(deny | approval_reasons)

approval_reasons contains msg if {
	require_approval
	msg := sprintf("%v on %v in production needs a reviewer's approval", [input.tool, input.resource])
}

# METADATA
# title: Allow
# description: Allowed when the tool is on the agent's allowlist, nothing denies the call, and no approval is pending.
allow if {
	count(deny) == 0
	tool_allowed
	not require_approval
}

# METADATA
# title: Require approval
# description: Deletes in production wait for a reviewer.
require_approval if {
	count(deny) == 0
	input.action == "delete"
	input.environment == "prod"
}

tool_allowed if input.tool in agent_tools[input.agent.id]

# METADATA
# title: Well-formed input
# description: The request arrives as a JSON object.
deny contains "input must be a JSON object" if not is_object(input)

# METADATA
# title: Suspended users
# description: Nothing runs on behalf of a suspended account.
deny contains msg if {
	input.user.id in blocked_users
	msg := sprintf("user %s is suspended", [input.user.id])
}

# METADATA
# title: Tool allowlist
# description: Each agent calls only the tools listed for it.
deny contains msg if {
	is_object(input)
	not tool_allowed
	msg := sprintf("agent %v may not call tool %v", [object.get(input, ["agent", "id"], "?"), object.get(input, "tool", "?")])
}

# METADATA
# title: Token budget
# description: A single call may not ask for more tokens than the budget allows.
deny contains msg if {
	input.token_budget > max_token_budget
	msg := sprintf("token budget %v exceeds the limit of %v", [input.token_budget, max_token_budget])
}

# METADATA
# title: Dangerous arguments
# description: Refuses arguments that mention credentials or drop tables, whatever their case.
deny contains msg if {
	some name, value in input.args
	is_string(value)
	some pattern in dangerous_patterns
	contains(lower(value), pattern)
	msg := sprintf("argument %s contains the forbidden pattern %q", [name, pattern])
}
