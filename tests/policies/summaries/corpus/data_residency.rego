# Data access: personal data stays in the regions its subject's country allows.
package corpus.data_residency

eu_countries := {"de", "fr", "nl", "ie"}

eu_regions := {"eu-west-1", "eu-central-1"}

# METADATA
# title: EU data outside the EU
deny contains sprintf("data of %s residents cannot be read from %s", [upper(input.subject.country), input.region]) if {
	lower(input.subject.country) in eu_countries
	not input.region in eu_regions
}

# METADATA
# title: Cross-border export
require_approval contains "cross-border export" if {
	input.operation == "export"
	input.region != input.home_region
}
