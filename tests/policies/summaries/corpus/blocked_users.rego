package corpus.blocked_users

# Accounts security has suspended.
blocked_users := {"blocked_user", "suspended_account", "u-107"}

default allow := false

# METADATA
# title: Blocked users
# description: Nobody on the blocked list may act.
deny contains msg if {
	input.user_id in blocked_users
	msg := sprintf("user %s is blocked", [input.user_id])
}

# METADATA
# title: Known users act
allow if {
	is_string(input.user_id)
	not input.user_id in blocked_users
}
