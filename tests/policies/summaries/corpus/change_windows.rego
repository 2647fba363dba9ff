package corpus.change_windows

change_ticket := `^CHG-[0-9]{4,}$`

freeze_start_hour := 22

default allow := false

# METADATA
# title: Change freeze
# description: No changes late in the evening.
deny contains msg if {
	input.change.hour >= freeze_start_hour
	msg := sprintf("changes after %v:00 are frozen", [freeze_start_hour])
}

# METADATA
# title: Ticket required
deny contains msg if {
	not regex.match(change_ticket, object.get(input, "ticket", ""))
	msg := sprintf("ticket %v is not a change ticket", [object.get(input, "ticket", "none")])
}

# METADATA
# title: Tracked changes
allow if {
	count(deny) == 0
	input.change.hour < freeze_start_hour
}

# METADATA
# title: Emergency changes
allow if {
	input.emergency == true
	input.change.approver != input.change.author
}
