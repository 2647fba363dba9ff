# AI agent tool use: each agent scope lists its tools in data kept by the platform team.
package corpus.agent_scopes

default allow := false

# METADATA
# title: Tool in scope
allow if {
	input.action.tool in data.acme.scopes[input.agent.scope]
}

# METADATA
# title: Tool out of scope
deny contains sprintf("agent %s may not call %s", [input.agent.id, input.action.tool]) if {
	not input.action.tool in data.acme.scopes[input.agent.scope]
}
