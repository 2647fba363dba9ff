package corpus.queue_provisioning

routing_methods := {"skills", "bullseye", "longest_idle"}

queue_name_pattern := `^[A-Z][A-Za-z0-9 ]{2,40}$`

# METADATA
# title: Queue SLA
# description: Every queue states a service level above zero seconds.
deny contains msg if {
	input.resource_type == "queue"
	input.spec.sla_seconds <= 0
	msg := sprintf("queue %v needs an SLA above 0 seconds", [input.spec.name])
}

# METADATA
# title: Queue routing
deny contains msg if {
	input.resource_type == "queue"
	not input.spec.routing_method in routing_methods
	msg := sprintf("queue routing %v is not supported", [object.get(input, ["spec", "routing_method"], "?")])
}

# METADATA
# title: Queue names
deny contains "queue names start with a capital letter" if {
	input.resource_type == "queue"
	not regex.match(queue_name_pattern, input.spec.name)
}
