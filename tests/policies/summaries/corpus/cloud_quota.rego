# Cloud quotas: a project's request must fit its quota, and costly or long changes wait for a person.
package corpus.cloud_quota

# METADATA
# title: Over quota
deny contains sprintf("%s would use %d of a quota of %d", [input.project, input.used + input.requested, input.quota]) if {
	input.used + input.requested > input.quota
}

# METADATA
# title: Costly request
require_approval contains "costs more than 1000 a month" if {
	input.requested * input.unit_cost > 1000
	input.currency == "EUR"
}

# METADATA
# title: Long maintenance window
deny contains "maintenance windows last at most 4 hours" if {
	input.window.end_hour - input.window.start_hour > 4
	input.window.start_hour >= 0
}
