from celery import shared_task

from core.opa.client import RETRY_WHILE_UNREACHABLE
from fleet.models import Environment

from . import runtime


@shared_task(**RETRY_WHILE_UNREACHABLE)
def push_runtime_config(environment_id: int) -> int:
    """Replace the environment's data.gavel_config in OPA with what Gavel holds now."""
    return len(runtime.push_runtime_config(Environment.objects.get(pk=environment_id))["policies"])


@shared_task
def push_all_runtime_configs() -> int:
    """Periodic: expired exceptions leave OPA's data, and a lost push is repaired."""
    environments = list(Environment.objects.values_list("pk", flat=True))
    for environment_id in environments:
        push_runtime_config.delay(environment_id)
    return len(environments)
