"""Alert rules on recent decisions, and each stretch of time one of them held."""
from django.conf import settings
from django.db import models


class AlertRule(models.Model):
    """A condition on recent decisions that should reach a person: deny rate or p95 latency too high."""

    class Metric(models.TextChoices):
        DENY_RATE = "deny_rate", "Deny rate (%)"
        P95_LATENCY = "p95_latency", "p95 evaluation latency (ms)"

    name = models.CharField(max_length=200)
    metric = models.CharField(max_length=20, choices=Metric.choices)
    threshold = models.FloatField(help_text="Fires when the value goes above this: percent, or milliseconds.")
    window_minutes = models.PositiveSmallIntegerField(default=5, help_text="Measured over the last N whole minutes.")
    min_decisions = models.PositiveIntegerField(
        default=20, help_text="Below this many decisions in the window the rule stays quiet: too few to judge.")
    environment = models.CharField(max_length=100, blank=True, help_text="Blank: every environment.")
    policy = models.ForeignKey("policies.Policy", null=True, blank=True, on_delete=models.CASCADE,
                               related_name="alert_rules", help_text="Blank: every policy.")
    enabled = models.BooleanField(default=True)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        db_table = "audit_alertrule"  # the table keeps the name the audit app gave it
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    @property
    def unit(self) -> str:
        return "%" if self.metric == self.Metric.DENY_RATE else " ms"


class Alert(models.Model):
    """One stretch of time a rule's condition held: opened when it went above, closed when it came back."""

    rule = models.ForeignKey(AlertRule, on_delete=models.CASCADE, related_name="alerts")
    opened_at = models.DateTimeField()
    opened_value = models.FloatField()
    peak_value = models.FloatField()
    last_value = models.FloatField()
    decisions = models.PositiveIntegerField(help_text="Decisions in the window when it opened.")
    closed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        db_table = "audit_alert"  # the table keeps the name the audit app gave it
        ordering = ["-opened_at"]
        constraints = [models.UniqueConstraint(fields=["rule"], condition=models.Q(closed_at__isnull=True),
                                               name="one_open_alert_per_rule")]

    def __str__(self) -> str:
        return f"{self.rule.name} since {self.opened_at:%Y-%m-%d %H:%M}"

    @property
    def is_open(self) -> bool:
        return self.closed_at is None

