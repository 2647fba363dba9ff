package corpus.data_export

export_row_limit := 10000

default allow := false

# METADATA
# title: Export size
deny contains msg if {
	input.export.rows >= export_row_limit
	msg := sprintf("exports are limited to fewer than %v rows", [export_row_limit])
}

# METADATA
# title: Exports stay in the region
deny contains msg if {
	input.export.destination_region != input.source_region
	msg := sprintf("data may not leave region %v", [input.source_region])
}

allow if {
	count(deny) == 0
	input.export.rows < export_row_limit
}
