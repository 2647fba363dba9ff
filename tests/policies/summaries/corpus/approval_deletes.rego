package corpus.approval_deletes

default allow := false

default require_approval := false

approved_by_other if {
	input.approval.approved_by != ""
	input.approval.approved_by != input.user.id
}

# METADATA
# title: Production deletes
deny contains "only the pipeline may delete in production" if {
	input.action == "delete"
	input.environment == "prod"
	input.requested_by != "ci-pipeline"
}

# METADATA
# title: Deletes need a second person
require_approval if {
	count(deny) == 0
	input.action == "delete"
	not approved_by_other
}

allow if {
	count(deny) == 0
	not require_approval
}
