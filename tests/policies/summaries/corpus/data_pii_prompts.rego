# Data access: prompts sent to external models carry no e-mail addresses or card numbers.
package corpus.data_pii_prompts

# METADATA
# title: E-mail address in prompt
deny contains "the prompt contains an e-mail address" if {
	input.model.external == true
	regex.match(`[a-z0-9._-]+@[a-z0-9.-]+\.[a-z]+`, lower(input.prompt))
}

# METADATA
# title: Card number in prompt
deny contains "the prompt contains a card number" if {
	regex.match(`\b[0-9]{4}[ -]?[0-9]{4}[ -]?[0-9]{4}[ -]?[0-9]{4}\b`, input.prompt)
}
