package corpus.environment_guard

# Who may deploy where.
deployers := {
	"prod": {"release-bot"},
	"staging": {"release-bot", "dev-team"},
}

default allow := false

# METADATA
# title: Replica count
deny contains "replicas must be a number" if {
	input.replicas
	not is_number(input.replicas)
}

# METADATA
# title: Deployer
deny contains msg if {
	not input.deployer in deployers[input.environment]
	msg := sprintf("%v may not deploy to %v", [object.get(input, "deployer", "?"), object.get(input, "environment", "?")])
}

allow if {
	input.deployer in deployers[input.environment]
	input.replicas >= 2
}
