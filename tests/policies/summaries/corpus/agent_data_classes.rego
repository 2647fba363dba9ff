# AI agent tool use: an agent acting for a user touches only the data classes the user may see.
package corpus.agent_data_classes

# METADATA
# title: Data class not authorized
deny contains sprintf("user %s may not access %s data", [input.user.id, class]) if {
	some class in input.action.data_classes_referenced
	not class in input.user.data_classifications_authorized
}

# METADATA
# title: Shared outside the company
require_approval contains "shares data outside the company" if {
	some recipient in input.action.recipients
	not endswith(recipient, "@acme.io")
}
