from django import forms
from django.utils import timezone

from fleet.models import Environment
from policies.models import Policy

from .canary import Rollout
from .models import Mode


class NameListField(forms.CharField):
    """One name per line (or comma-separated) into a tuple of names."""

    widget = forms.Textarea(attrs={"rows": 2, "placeholder": "one per line"})

    def to_python(self, value):
        text = super().to_python(value) or ""
        return tuple(dict.fromkeys(n.strip() for n in text.replace(",", "\n").splitlines() if n.strip()))

    def prepare_value(self, value):
        return "\n".join(value) if isinstance(value, (list, tuple)) else value


class RolloutForm(forms.Form):
    mode = forms.ChoiceField(choices=Mode.choices, help_text="For everyone not singled out below.")
    enforce_percentage = forms.IntegerField(min_value=0, max_value=100, label="Enforce percentage",
                                            help_text="Share of users enforced, by a stable hash of their id.")
    enforce_users = NameListField(required=False, label="Always enforce these users")
    enforce_agents = NameListField(required=False, label="Always enforce these agents")
    dry_run_users = NameListField(required=False, label="Always dry-run these users",
                                  help_text="Checked first, after the kill switch.")
    user_field = forms.CharField(max_length=200, label="User id field", initial="user.id")
    agent_field = forms.CharField(max_length=200, label="Agent id field", initial="agent.id")
    reason = forms.CharField(max_length=500, label="Why this change", required=False)

    @classmethod
    def for_rollout(cls, rollout: Rollout, data=None):
        initial = {name: getattr(rollout, name) for name in
                   ("mode", "enforce_percentage", "enforce_users", "enforce_agents", "dry_run_users",
                    "user_field", "agent_field")}
        return cls(data, initial=initial)

    def rollout(self) -> Rollout:
        data = self.cleaned_data
        return Rollout(data["mode"], data["enforce_percentage"], data["enforce_users"], data["enforce_agents"],
                       data["dry_run_users"], data["user_field"], data["agent_field"])

    def clean_reason(self):
        # Only saving needs a reason; a preview does not.
        return self.cleaned_data["reason"].strip()


class KillSwitchForm(forms.Form):
    engaged = forms.BooleanField(required=False)
    reason = forms.CharField(max_length=500)


class ExceptionForm(forms.Form):
    policy = forms.ModelChoiceField(queryset=Policy.objects.all(), to_field_name="name")
    environment = forms.ModelChoiceField(queryset=Environment.objects.all(), to_field_name="name")
    match = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 2, "placeholder": "user.id = u-112"}), label="Covers requests where",
        help_text="One input field per line, as field = value. All must match.",
    )
    reason_contains = forms.CharField(max_length=300, required=False, label="Only denials whose reason contains",
                                      help_text="Blank: every denial of this policy for these requests.")
    justification = forms.CharField(widget=forms.Textarea(attrs={"rows": 3}))
    ticket = forms.CharField(max_length=100)
    expires_at = forms.DateTimeField(widget=forms.DateTimeInput(attrs={"type": "datetime-local"}),
                                     label="Expires (UTC)")

    def clean_match(self):
        conditions = []
        for line in self.cleaned_data["match"].splitlines():
            if not line.strip():
                continue
            field, sep, value = line.partition("=")
            if not sep or not field.strip() or not value.strip():
                raise forms.ValidationError(f"“{line.strip()}” is not of the form field = value")
            conditions.append({"field": field.strip(), "value": value.strip()})
        if not conditions:
            raise forms.ValidationError("Name at least one field the exception covers.")
        return conditions

    def clean_expires_at(self):
        expires_at = self.cleaned_data["expires_at"]
        if expires_at <= timezone.now():
            raise forms.ValidationError("The expiry must be in the future.")
        return expires_at
