# Which tools each AI agent may call through the gateway.
package corpus.agent_tool_access

# The tools each agent may call.
agent_tools := {
	"support-bot": {"kb.search", "ticket.read"},
	"finance-agent": {"invoice.read", "ledger.query"},
}

default allow := false

tool_permitted if input.tool in agent_tools[input.agent.id]

# METADATA
# title: Unlisted tool
# description: An agent may only call the tools listed for it.
# custom:
#   severity: high
deny contains msg if {
	not tool_permitted
	msg := sprintf("agent %v may not call %v", [object.get(input, ["agent", "id"], "?"), object.get(input, "tool", "?")])
}

allow if {
	count(deny) == 0
	tool_permitted
}
