package corpus.storage_encryption

encryption_methods := {"aes256", "kms"}

# METADATA
# title: Encryption at rest
# description: Storage buckets are encrypted at rest.
# custom:
#   severity: critical
deny contains msg if {
	input.resource_type == "bucket"
	not input.spec.encryption in encryption_methods
	msg := sprintf("bucket %v must be encrypted (aes256 or kms)", [object.get(input, ["spec", "name"], "?")])
}

# METADATA
# title: Public buckets
deny contains "recording buckets may never be public" if {
	endswith(input.spec.name, "-recordings")
	input.spec.public == true
}
