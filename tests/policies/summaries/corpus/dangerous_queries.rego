package corpus.dangerous_queries

dangerous_patterns := ["password", "drop table", "rm -rf"]

# METADATA
# title: Dangerous query
# description: Queries that mention credentials or destructive commands are refused, whatever their case.
deny contains msg if {
	some pattern in dangerous_patterns
	contains(lower(input.query), pattern)
	msg := sprintf("query contains the forbidden pattern %q", [pattern])
}

# METADATA
# title: Shell escapes
deny contains "queries may not start with a shell escape" if startswith(input.query, "!")
