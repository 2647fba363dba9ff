package corpus.token_budget

max_tokens := 50000

# METADATA
# title: Token budget
# description: One request may not ask for more tokens than the budget.
# custom:
#   severity: medium
deny contains msg if {
	input.token_budget > max_tokens
	msg := sprintf("token budget %d exceeds %d", [input.token_budget, max_tokens])
}

# METADATA
# title: Budget must be a number
deny contains "token budget must be a number" if {
	input.token_budget
	not is_number(input.token_budget)
}
