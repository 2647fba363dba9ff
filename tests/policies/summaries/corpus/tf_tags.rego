# Terraform plan: resources carry an owner tag written in lower case.
package corpus.tf_tags

# METADATA
# title: Owner tag
deny contains sprintf("%s has no owner tag", [input.resource.address]) if {
	not object.get(input.resource.tags, "owner", "")
	input.resource.mode == "managed"
}

# METADATA
# title: Owner in lower case
deny contains sprintf("owner %s must be lower case", [input.resource.tags.owner]) if {
	input.resource.tags.owner != lower(input.resource.tags.owner)
}
