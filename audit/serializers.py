from rest_framework import serializers

from .models import Decision


class DecisionSerializer(serializers.ModelSerializer):
    policy = serializers.SlugRelatedField(slug_field="name", read_only=True)
    version = serializers.IntegerField(source="version.number", read_only=True, allow_null=True)

    class Meta:
        model = Decision
        fields = ["decision_id", "timestamp", "path", "outcome", "reasons", "policy", "version", "version_source",
                  "effective_mode", "environment", "instance", "user", "agent", "action", "resource", "masked",
                  "input", "result", "labels", "bundles", "latency_ns", "requested_by", "received_at"]
        read_only_fields = fields
