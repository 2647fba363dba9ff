"""The kill-switch banner every page shows (templates/rollout/_kill_switch_banner.html)."""
from django import template

from rollout.services import engaged_kill_switches

register = template.Library()


@register.simple_tag
def kill_switches_engaged():
    return engaged_kill_switches()
