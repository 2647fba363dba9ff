# Data access: deleting records younger than the retention period is refused.
package corpus.data_retention

retention_days := {"invoice": 3650, "log": 90, "ticket": 365}

# METADATA
# title: Within retention
deny contains sprintf("%s records are kept %d days", [input.record.type, retention_days[input.record.type]]) if {
	input.operation == "delete"
	age_ns := time.parse_rfc3339_ns(input.now) - time.parse_rfc3339_ns(input.record.created_at)
	age_ns < retention_days[input.record.type] * 86400000000000
}
