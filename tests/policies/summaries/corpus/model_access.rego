package corpus.model_access

max_messages := 40

# METADATA
# title: Approved model families
deny contains msg if {
	not startswith(input.model, "gpt-")
	not startswith(input.model, "claude-")
	msg := sprintf("model %v is not approved", [object.get(input, "model", "?")])
}

# METADATA
# title: Conversation length
deny contains msg if {
	count(input.messages) > max_messages
	msg := sprintf("conversation has more than %v messages", [max_messages])
}

# METADATA
# title: Preview models
deny contains "preview models are not allowed in production" if {
	endswith(input.model, "-preview")
	input.environment == "prod"
}
