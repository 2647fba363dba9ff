package gavel.provisioning_test

import data.gavel.provisioning

bucket(name, after) := {"address": sprintf("aws_s3_bucket.%s", [name]), "type": "aws_s3_bucket",
	"change": {"actions": ["create"], "after": object.union({"bucket": name}, after)}}

test_unencrypted_bucket_is_denied if {
	provisioning.deny["S3 bucket logs must have server-side encryption enabled"] with input as {"resource_changes": [bucket("logs", {})]}
}

test_encrypted_private_bucket_passes if {
	count(provisioning.deny) == 0 with input as {"resource_changes": [bucket("logs", {
		"acl": "private",
		"server_side_encryption_configuration": [{"rule": [{}]}],
	})]}
}

test_public_acl_is_denied if {
	provisioning.deny["S3 bucket site must not have a public ACL (public-read)"] with input as {"resource_changes": [bucket("site", {
		"acl": "public-read",
		"server_side_encryption_configuration": [{"rule": [{}]}],
	})]}
}

test_deleted_bucket_is_not_checked if {
	count(provisioning.deny) == 0 with input as {"resource_changes": [{"address": "aws_s3_bucket.old", "type": "aws_s3_bucket",
		"change": {"actions": ["delete"], "after": null}}]}
}
