package gavel.platform_changes_test

import data.gavel.platform_changes

change(resource_type, spec) := {"action": "create", "resource_type": resource_type, "requested_by": "ci-pipeline", "spec": spec}

queue := {"name": "Billing", "sla_seconds": 30, "routing_method": "skills"}

user := {"email": "ana.souza@example.com", "role": "agent"}

bucket := {"name": "call-recordings", "encryption": "kms"}

test_complete_changes_are_allowed if {
	platform_changes.allow with input as change("queue", queue)
	platform_changes.allow with input as change("user", user)
	platform_changes.allow with input as object.union(change("bucket", bucket), {"action": "update"})
}

test_input_that_is_not_an_object_is_denied if {
	platform_changes.deny["input must be a JSON object"] with input as ["queue"]
}

test_unmanaged_resource_type_is_denied if {
	platform_changes.deny["resource type dns_zone is not managed by this pipeline"] with input as change("dns_zone", {})
}

test_unknown_action_is_denied if {
	platform_changes.deny["action patch is not supported"] with input as object.union(change("queue", queue), {"action": "patch"})
}

test_queue_without_an_sla_is_denied if {
	platform_changes.deny["queue Billing must define an SLA greater than 0 seconds"] with input as change("queue", object.union(queue, {"sla_seconds": 0}))
}

test_queue_without_a_routing_method_is_denied if {
	platform_changes.deny["queue Billing must use one of the routing methods [\"bullseye\", \"longest_idle\", \"round_robin\", \"skills\"]"] with input as change("queue", {"name": "Billing", "sla_seconds": 30})
}

test_personal_email_is_denied if {
	platform_changes.deny["user email ana@gmail.com is not a corporate address"] with input as change("user", object.union(user, {"email": "ana@gmail.com"}))
}

test_unencrypted_bucket_is_denied if {
	platform_changes.deny["bucket exports must be encrypted at rest (aes256 or kms)"] with input as change("bucket", {"name": "exports"})
}

test_deleting_a_queue_waits_for_a_reviewer if {
	platform_changes.decision == {
		"allow": false,
		"reasons": ["deleting queue Old needs a reviewer's approval"],
		"require_approval": true,
	} with input as {"action": "delete", "resource_type": "queue", "requested_by": "ci-pipeline", "spec": {"name": "Old"}}
}

test_deleting_a_user_needs_no_approval if {
	platform_changes.allow with input as {"action": "delete", "resource_type": "user", "requested_by": "ci-pipeline", "spec": {}}
}
