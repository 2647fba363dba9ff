from rest_framework import serializers

from fleet.models import Environment

from .models import (
    ActiveVersion,
    LintWarning,
    Policy,
    PolicyVersion,
    Publication,
    PublishEvent,
    PublishRequest,
    VersionTestRun,
)


class VersionTestRunSerializer(serializers.ModelSerializer):
    class Meta:
        model = VersionTestRun
        fields = ["passed", "total", "failed", "coverage", "not_covered_rows", "results", "created_at"]
        read_only_fields = fields


class LintWarningSerializer(serializers.ModelSerializer):
    line = serializers.IntegerField(source="row", read_only=True)

    class Meta:
        model = LintWarning
        fields = ["code", "line", "message"]
        read_only_fields = fields


class PolicyVersionSerializer(serializers.ModelSerializer):
    policy = serializers.SlugRelatedField(slug_field="name", read_only=True)
    author = serializers.StringRelatedField()
    tests = serializers.CharField(required=False, allow_blank=True, trim_whitespace=False, default="")
    test_run = serializers.SerializerMethodField()
    lint_warnings = LintWarningSerializer(many=True, read_only=True)

    class Meta:
        model = PolicyVersion
        fields = ["id", "policy", "number", "sha256", "author", "message", "created_at", "source", "tests",
                  "test_run", "lint_warnings"]
        read_only_fields = ["id", "policy", "number", "sha256", "author", "created_at"]

    def get_test_run(self, version) -> dict | None:
        run = getattr(version, "test_run", None) if version.tests.strip() else None
        return VersionTestRunSerializer(run).data if run else None


class ActiveVersionSerializer(serializers.ModelSerializer):
    environment = serializers.SlugRelatedField(slug_field="name", read_only=True)
    version = serializers.IntegerField(source="version.number", read_only=True)

    class Meta:
        model = ActiveVersion
        fields = ["environment", "version", "since"]
        read_only_fields = fields


class PolicySerializer(serializers.ModelSerializer):
    # The default environment's (GAVEL_ENVIRONMENT) version; `environments` has each one's.
    active_version = serializers.SerializerMethodField()
    environments = ActiveVersionSerializer(source="active_versions", many=True, read_only=True)
    created_by = serializers.StringRelatedField()
    # Write-only: the first version's source, tests and message when creating a policy.
    source = serializers.CharField(write_only=True, trim_whitespace=False)
    tests = serializers.CharField(write_only=True, required=False, allow_blank=True, trim_whitespace=False, default="")
    message = serializers.CharField(write_only=True, max_length=500)

    class Meta:
        model = Policy
        fields = ["name", "package", "title", "description", "category", "team", "bundle", "created_by",
                  "created_at", "active_version", "environments", "retired_at", "source", "tests", "message"]
        read_only_fields = ["package", "created_by", "created_at", "active_version", "environments", "retired_at"]

    def get_active_version(self, policy) -> int | None:
        version = policy.active_version
        return version.number if version else None


class PublicationSerializer(serializers.ModelSerializer):
    policy = serializers.CharField(source="version.policy.name", read_only=True)
    version = serializers.IntegerField(source="version.number", read_only=True)
    requested_by = serializers.StringRelatedField()
    environment = serializers.SlugRelatedField(slug_field="name", read_only=True)
    instance = serializers.SlugRelatedField(slug_field="name", read_only=True)

    class Meta:
        model = Publication
        fields = ["id", "policy", "version", "target_url", "environment", "instance", "group", "repush", "status",
                  "detail", "attempts", "requested_by", "requested_at", "last_attempt_at", "confirmed_at"]
        read_only_fields = fields


class PublishRequestSerializer(serializers.ModelSerializer):
    policy = serializers.CharField(source="version.policy.name", read_only=True)
    version = serializers.IntegerField(source="version.number", read_only=True)
    requested_by = serializers.StringRelatedField()
    decided_by = serializers.StringRelatedField()
    publication = serializers.PrimaryKeyRelatedField(read_only=True)
    environment = serializers.SlugRelatedField(slug_field="name", read_only=True)

    class Meta:
        model = PublishRequest
        fields = ["id", "policy", "version", "environment", "reason", "requested_by", "requested_at", "status", "decided_by",
                  "decided_at", "decision_note", "publication"]
        read_only_fields = fields


class PublishEventSerializer(serializers.ModelSerializer):
    version = serializers.IntegerField(source="version.number", read_only=True, allow_null=True)
    actor = serializers.StringRelatedField()
    environment = serializers.SlugRelatedField(slug_field="name", read_only=True)

    class Meta:
        model = PublishEvent
        fields = ["id", "action", "version", "environment", "actor", "reason", "request", "publication", "created_at"]
        read_only_fields = fields


class ReasonSerializer(serializers.Serializer):
    reason = serializers.CharField(max_length=2000, required=False, allow_blank=True, default="")


class EnvironmentReasonSerializer(ReasonSerializer):
    """Publishing and rollback act on one environment; omitted, the default (GAVEL_ENVIRONMENT)."""

    environment = serializers.SlugRelatedField(slug_field="name", queryset=Environment.objects.all(), required=False,
                                               allow_null=True, default=None)


class ReplayWindowSerializer(serializers.Serializer):
    """{"last": N} or {"since": ..., "until": ...}; checked by replay.parse_window."""

    last = serializers.IntegerField(required=False, allow_null=True)
    since = serializers.DateTimeField(required=False, allow_null=True)
    until = serializers.DateTimeField(required=False, allow_null=True)
    # Only the decisions of the version this environment runs (default: every recorded decision).
    environment = serializers.SlugRelatedField(slug_field="name", queryset=Environment.objects.all(), required=False,
                                               allow_null=True)
