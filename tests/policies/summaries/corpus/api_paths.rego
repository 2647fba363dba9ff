# API authorization: internal routes are for service accounts, admin routes for admins.
package corpus.api_paths

# METADATA
# title: Internal route
deny contains sprintf("%s is internal", [input.path]) if {
	regex.match(`^/internal/`, input.path)
	not endswith(input.subject, "@svc.acme.io")
}

# METADATA
# title: Admin route
deny contains "admin routes need the admin group" if {
	startswith(lower(input.path), "/admin")
	not "admins" in input.groups
}
