package corpus.user_provisioning

admin_roles := {"admin", "org_admin"}

corporate_email := `^[a-z0-9._-]+@example\.com$`

change_ticket := `^CHG-[0-9]{4,}$`

has_ticket if regex.match(change_ticket, input.ticket)

# METADATA
# title: Corporate email
deny contains msg if {
	input.resource_type == "user"
	not regex.match(corporate_email, input.spec.email)
	msg := sprintf("email %v is not a corporate address", [object.get(input, ["spec", "email"], "?")])
}

# METADATA
# title: Admin roles need a ticket
# description: Granting an administrative role is a tracked change.
# custom:
#   severity: high
deny contains msg if {
	input.resource_type == "user"
	input.spec.role in admin_roles
	not has_ticket
	msg := sprintf("role %s needs a change ticket", [input.spec.role])
}
