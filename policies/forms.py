from django import forms

from .models import Policy

REGO_WIDGET = forms.Textarea(attrs={"rows": 24, "spellcheck": "false", "class": "code", "autocomplete": "off"})


class PolicyForm(forms.Form):
    name = forms.SlugField(max_length=100, help_text="Short identifier, e.g. agent_gateway. Also OPA's policy id.")
    title = forms.CharField(max_length=200)
    description = forms.CharField(widget=forms.Textarea(attrs={"rows": 3}), required=False)
    source = forms.CharField(widget=REGO_WIDGET, strip=False, label="Rego source")
    message = forms.CharField(max_length=500, initial="Initial version", label="Version message")

    def clean_name(self):
        name = self.cleaned_data["name"]
        if Policy.objects.filter(name=name).exists():
            raise forms.ValidationError("A policy with this name already exists.")
        return name


class VersionForm(forms.Form):
    source = forms.CharField(widget=REGO_WIDGET, strip=False, label="Rego source")
    message = forms.CharField(max_length=500, label="What changed and why")
