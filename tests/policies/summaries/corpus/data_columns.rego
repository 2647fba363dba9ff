# Data access: analysts do not read restricted columns; wide queries need approval.
package corpus.data_columns

restricted := {"ssn", "salary", "diagnosis"}

# METADATA
# title: Restricted columns
deny contains sprintf("columns %v are restricted", [sort(forbidden)]) if {
	forbidden := {c | some c in input.query.columns} & restricted
	count(forbidden) > 0
	input.user.role != "dpo"
}

# METADATA
# title: Wide query
require_approval contains "reads more than 20 columns" if {
	count(input.query.columns) > 20
}
