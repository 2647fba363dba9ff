# Terraform plan: deletions of databases need approval, and instance sizes are capped.
package corpus.tf_plan_changes

large_types := {"m5.8xlarge", "m5.16xlarge", "r5.12xlarge"}

# METADATA
# title: Database deletion
require_approval contains sprintf("deletes database %s", [rc.address]) if {
	some rc in input.resource_changes
	rc.type == "aws_db_instance"
	"delete" in rc.change.actions
}

# METADATA
# title: Oversized instance
deny contains sprintf("%s uses instance type %s", [rc.address, rc.change.after.instance_type]) if {
	some rc in input.resource_changes
	rc.type == "aws_instance"
	rc.change.after.instance_type in large_types
}
