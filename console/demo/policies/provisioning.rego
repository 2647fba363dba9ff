# Demo policy: infrastructure changes checked in CI before they are applied. The pipeline runs
# `terraform show -json tfplan > tfplan.json` and `gavel check tfplan.json --env dev`
# (or `conftest test` against the tarball Gavel publishes: same package, same rules).
#
# Input: a Terraform plan in JSON (`resource_changes`: [{address, type, change: {actions, after}}]).
package gavel.provisioning

public_acls := {"public-read", "public-read-write", "authenticated-read"}

# Buckets the plan creates or keeps, by their bucket name.
buckets[name] := change if {
	some change in input.resource_changes
	change.type == "aws_s3_bucket"
	not "delete" in change.change.actions
	name := object.get(change.change.after, "bucket", change.address)
}

after_of(type) := [change.change.after |
	some change in input.resource_changes
	change.type == type
	not "delete" in change.change.actions
]

encrypted(name) if {
	count(object.get(buckets[name].change.after, "server_side_encryption_configuration", [])) > 0
}

encrypted(name) if {
	some config in after_of("aws_s3_bucket_server_side_encryption_configuration")
	config.bucket == name
}

deny contains msg if {
	some name, _ in buckets
	not encrypted(name)
	msg := sprintf("S3 bucket %s must have server-side encryption enabled", [name])
}

deny contains msg if {
	some name, change in buckets
	change.change.after.acl in public_acls
	msg := sprintf("S3 bucket %s must not have a public ACL (%s)", [name, change.change.after.acl])
}

deny contains msg if {
	some acl in after_of("aws_s3_bucket_acl")
	acl.acl in public_acls
	msg := sprintf("S3 bucket %s must not have a public ACL (%s)", [acl.bucket, acl.acl])
}

# Not a refusal: conftest and `gavel check` print it as WARN.
warn contains msg if {
	some name, change in buckets
	not object.get(change.change.after, "tags", {}).owner
	msg := sprintf("S3 bucket %s has no owner tag", [name])
}
