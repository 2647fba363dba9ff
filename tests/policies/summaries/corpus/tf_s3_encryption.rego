# Terraform plan: every bucket is encrypted and none is public.
package corpus.tf_s3_encryption

# METADATA
# title: Unencrypted bucket
deny contains sprintf("bucket %s must be encrypted", [input.resource.name]) if {
	input.resource.type == "aws_s3_bucket"
	not input.resource.values.server_side_encryption_configuration
}

# METADATA
# title: Public bucket
deny contains sprintf("bucket %s must not be public", [input.resource.name]) if {
	input.resource.type == "aws_s3_bucket"
	lower(input.resource.values.acl) in {"public-read", "public-read-write"}
}
