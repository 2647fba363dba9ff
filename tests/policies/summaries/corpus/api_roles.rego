# API authorization: roles from the identity provider, kept in data, decide who may do what.
package corpus.api_roles

default allow := false

# METADATA
# title: Role grants the action
allow if {
	some role in data.acme.user_roles[input.user]
	input.action in data.acme.role_actions[role]
}

# METADATA
# title: Suspended account
deny contains sprintf("account %s is suspended", [input.user]) if {
	input.user in data.acme.suspended
}
