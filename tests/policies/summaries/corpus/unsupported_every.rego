package corpus.unsupported_every

# METADATA
# title: Every recipient is internal
# description: Uses `every`, which Gavel shows as written.
deny contains "all recipients must be internal" if {
	input.recipients
	not all_internal
}

all_internal if {
	every r in input.recipients {
		endswith(r, "@example.com")
	}
}

# METADATA
# title: Too many attachments
deny contains "no more than 5 large attachments" if {
	count([a | some a in input.attachments; a.size > 1000000]) > 5
}
