from rest_framework import serializers

from .models import Policy, PolicyVersion, Publication


class PolicyVersionSerializer(serializers.ModelSerializer):
    policy = serializers.SlugRelatedField(slug_field="name", read_only=True)
    author = serializers.StringRelatedField()

    class Meta:
        model = PolicyVersion
        fields = ["id", "policy", "number", "sha256", "author", "message", "created_at", "source"]
        read_only_fields = ["id", "policy", "number", "sha256", "author", "created_at"]


class PolicySerializer(serializers.ModelSerializer):
    active_version = serializers.IntegerField(source="active_version.number", read_only=True, allow_null=True)
    created_by = serializers.StringRelatedField()
    # Write-only: the first version's source and message when creating a policy.
    source = serializers.CharField(write_only=True, trim_whitespace=False)
    message = serializers.CharField(write_only=True, max_length=500)

    class Meta:
        model = Policy
        fields = ["name", "package", "title", "description", "created_by", "created_at", "active_version",
                  "source", "message"]
        read_only_fields = ["package", "created_by", "created_at", "active_version"]


class PublicationSerializer(serializers.ModelSerializer):
    policy = serializers.CharField(source="version.policy.name", read_only=True)
    version = serializers.IntegerField(source="version.number", read_only=True)
    requested_by = serializers.StringRelatedField()

    class Meta:
        model = Publication
        fields = ["id", "policy", "version", "target_url", "status", "detail", "attempts", "requested_by",
                  "requested_at", "last_attempt_at", "confirmed_at"]
        read_only_fields = fields
