# API authorization: payroll endpoints answer only during business hours (UTC).
package corpus.api_business_hours

default allow := false

# METADATA
# title: Outside business hours
deny contains "payroll is closed outside 08:00-18:00 UTC" if {
	startswith(input.path, "/payroll/")
	[hour, _, _] := time.clock(time.parse_rfc3339_ns(input.timestamp))
	not hour_open(hour)
}

hour_open(h) if {
	h >= 8
	h < 18
}

# METADATA
# title: Weekday access
allow if {
	startswith(input.path, "/payroll/")
	time.weekday(time.parse_rfc3339_ns(input.timestamp)) in {"Monday", "Tuesday", "Wednesday", "Thursday", "Friday"}
	count(deny) == 0
}
