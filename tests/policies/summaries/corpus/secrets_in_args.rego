package corpus.secrets_in_args

secret_suffixes := ["_token", "_secret", "_password"]

# METADATA
# title: Secrets in arguments
# description: Tool arguments may not carry credentials.
deny contains msg if {
	some name, value in input.args
	is_string(value)
	some suffix in secret_suffixes
	endswith(name, suffix)
	msg := sprintf("argument %v looks like a credential", [name])
}
