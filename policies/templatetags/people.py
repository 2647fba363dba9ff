"""People as print views and evidence name them: "Ana Souza (author)", never the login alone."""
from django import template

from policies.evidence.chain import person as person_of

register = template.Library()


@register.filter
def person(user) -> str:
    return person_of(user)
