# AI agent tool use: the spending limit depends on the mode the agent runs in.
package corpus.agent_modes

limits := {"sandbox": 10, "assist": 100, "autonomous": 1000}

limit := limits[input.mode]

# METADATA
# title: Over the mode's limit
deny contains sprintf("%v exceeds the %v limit", [input.amount, input.mode]) if {
	input.amount > limit
}

# METADATA
# title: Unknown mode
deny contains sprintf("unknown mode %v", [input.mode]) if {
	not input.mode in object.keys(limits)
}
