# Demo policy: a CI pipeline asks this package before it changes the contact
# centre platform's configuration. Query data.gavel.platform_changes.decision.
#
# Input:
#   {"action": "create" | "update" | "delete",
#    "resource_type": "queue" | "user" | "bucket",
#    "requested_by": "ci-pipeline",
#    "spec": {...}}
# where spec is, per resource type:
#   queue:  {"name": "Billing", "sla_seconds": 30, "routing_method": "skills"}
#   user:   {"email": "ana@example.com", "role": "agent"}
#   bucket: {"name": "call-recordings", "encryption": "aes256" | "kms" | "none"}
package gavel.platform_changes

managed_types := {"queue", "user", "bucket"}

routing_methods := {"skills", "bullseye", "longest_idle", "round_robin"}

corporate_email := `^[A-Za-z0-9._%+-]+@example\.com$`

default allow := false

default require_approval := false

# METADATA
# title: Platform change decision
# description: The one answer the pipeline reads - allow, the reasons for a refusal, and whether a human must approve first.
decision := {"allow": allow, "reasons": reasons, "require_approval": require_approval}

# Why the change was refused or held: the deny messages, or why a person must approve.
reasons := sort(deny | approval_reasons)

approval_reasons contains msg if {
	require_approval
	msg := sprintf("deleting %v %v needs a reviewer's approval", [input.resource_type, object.get(input, ["spec", "name"], "")])
}

# METADATA
# title: Allow
# description: Allowed when the resource type is known, nothing denies the change, and no approval is pending.
allow if {
	count(deny) == 0
	managed_type
	not require_approval
}

# METADATA
# title: Require approval
# description: Deleting a queue drops the contacts waiting in it, so a reviewer confirms it.
require_approval if {
	count(deny) == 0
	input.action == "delete"
	input.resource_type == "queue"
}

# Deletes carry no spec worth checking; creates and updates must be complete.
writes if input.action in {"create", "update"}

# The checks below are helper rules, not inline `not f(input.x)`: OPA hoists a
# function call's arguments out of `not`, so an absent field would make the whole
# deny rule undefined instead of firing.
managed_type if input.resource_type in managed_types

known_action if input.action in {"create", "update", "delete"}

known_routing if input.spec.routing_method in routing_methods

corporate if regex.match(corporate_email, input.spec.email)

valid_sla if {
	is_number(input.spec.sla_seconds)
	input.spec.sla_seconds > 0
}

encrypted if input.spec.encryption in {"aes256", "kms"}

# METADATA
# title: Well-formed input
# description: The change arrives as a JSON object.
deny contains "input must be a JSON object" if not is_object(input)

# METADATA
# title: Known resource types
# description: Only queues, users and storage buckets are managed through this pipeline.
deny contains msg if {
	is_object(input)
	not managed_type
	msg := sprintf("resource type %v is not managed by this pipeline", [object.get(input, "resource_type", "?")])
}

# METADATA
# title: Known actions
# description: Changes create, update or delete a resource; nothing else.
deny contains msg if {
	is_object(input)
	not known_action
	msg := sprintf("action %v is not supported", [object.get(input, "action", "?")])
}

# METADATA
# title: Queue SLA
# description: Every queue states a service level greater than zero seconds.
deny contains msg if {
	input.resource_type == "queue"
	writes
	not valid_sla
	msg := sprintf("queue %v must define an SLA greater than 0 seconds", [object.get(input, ["spec", "name"], "?")])
}

# METADATA
# title: Queue routing
# description: Every queue names a supported routing method.
deny contains msg if {
	input.resource_type == "queue"
	writes
	not known_routing
	msg := sprintf("queue %v must use one of the routing methods %v", [object.get(input, ["spec", "name"], "?"), sort(routing_methods)])
}

# METADATA
# title: Corporate email
# description: Provisioned users sign in with a corporate address.
deny contains msg if {
	input.resource_type == "user"
	writes
	not corporate
	msg := sprintf("user email %v is not a corporate address", [object.get(input, ["spec", "email"], "?")])
}

# METADATA
# title: Bucket encryption
# description: Storage buckets are encrypted at rest.
deny contains msg if {
	input.resource_type == "bucket"
	writes
	not encrypted
	msg := sprintf("bucket %v must be encrypted at rest (aes256 or kms)", [object.get(input, ["spec", "name"], "?")])
}
