package corpus.rate_limits

min_interval_ms := 250

daily_cap := 1000

default allow := false

# METADATA
# title: Too fast
deny contains msg if {
	input.interval_ms < min_interval_ms
	msg := sprintf("calls must be at least %v ms apart", [min_interval_ms])
}

# METADATA
# title: Daily cap
deny contains "the daily cap is reached" if input.calls_today > daily_cap

# METADATA
# title: Tier
deny contains "free tier callers may not batch" if {
	upper(input.tier) == "FREE"
	input.batch == true
}

allow if {
	count(deny) == 0
	input.calls_today <= daily_cap
}
