# AI agent tool use: tools that change many things wait for a person.
package corpus.agent_blast_radius

high_impact_tools := {"db.migrate", "k8s.delete", "dns.update"}

# METADATA
# title: High blast radius tool
require_approval contains "high blast radius tool" if {
	input.action.tool in high_impact_tools
}

# METADATA
# title: Bulk change
require_approval contains sprintf("changes %d records at once", [input.action.record_count]) if {
	input.action.record_count > 100
}

# METADATA
# title: Agent suspended
deny contains sprintf("agent %s is suspended", [input.agent.id]) if {
	input.agent.status == "suspended"
}
