from django import forms

from .models import Category, Policy

# data-editor: static/gavel/editor.js (CodeMirror, frontend/) turns these into code editors; without
# JavaScript they stay plain text boxes and the form posts the same fields.
REGO_WIDGET = forms.Textarea(attrs={"rows": 24, "spellcheck": "false", "class": "code", "autocomplete": "off",
                                    "data-editor": "rego", "data-target": "source"})
TESTS_WIDGET = forms.Textarea(attrs={"rows": 12, "spellcheck": "false", "class": "code", "autocomplete": "off",
                                     "data-editor": "rego", "data-target": "tests"})
TESTS_HELP = ("Optional. A Rego test module (its file is named like policy_test.rego): Gavel runs its tests with "
              "OPA when you save. A version whose tests fail cannot be published.")


class PolicyForm(forms.Form):
    name = forms.SlugField(max_length=100, help_text="Short identifier, e.g. agent_gateway. Also OPA's policy id.")
    title = forms.CharField(max_length=200)
    description = forms.CharField(widget=forms.Textarea(attrs={"rows": 3}), required=False)
    category = forms.ChoiceField(choices=Category.choices, initial=Category.RESOURCE, required=False)
    team = forms.CharField(max_length=100, required=False, help_text="The team that owns the policy.")
    bundle = forms.SlugField(max_length=100, required=False, help_text="Optional: a name grouping related policies.")
    source = forms.CharField(widget=REGO_WIDGET, strip=False, label="Rego source")
    tests = forms.CharField(widget=TESTS_WIDGET, strip=False, required=False, label="Tests", help_text=TESTS_HELP)
    message = forms.CharField(max_length=500, initial="Initial version", label="Version message")

    def clean_name(self):
        name = self.cleaned_data["name"]
        if Policy.objects.filter(name=name).exists():
            raise forms.ValidationError("A policy with this name already exists.")
        return name


class VersionForm(forms.Form):
    source = forms.CharField(widget=REGO_WIDGET, strip=False, label="Rego source")
    tests = forms.CharField(widget=TESTS_WIDGET, strip=False, required=False, label="Tests", help_text=TESTS_HELP)
    message = forms.CharField(max_length=500, label="What changed and why")


class ReasonForm(forms.Form):
    """Why: publishing, rejecting, rolling back or retiring always says why."""

    reason = forms.CharField(max_length=2000, widget=forms.Textarea(attrs={"rows": 2}))

