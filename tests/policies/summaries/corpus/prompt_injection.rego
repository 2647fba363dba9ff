package corpus.prompt_injection

injection_pattern := `(?i)ignore (all )?previous instructions`

# METADATA
# title: Prompt injection
# custom:
#   severity: high
deny contains "the prompt tries to override the system instructions" if {
	regex.match(injection_pattern, input.prompt)
}

# METADATA
# title: System prompt stays private
deny contains "the prompt asks for the system prompt" if {
	contains(lower(input.prompt), "system prompt")
	not input.user.role == "admin"
}
