from celery import shared_task
from django.conf import settings

from core.opa.client import OpaUnreachable

from . import drift, opa_authz
from .models import Environment, OpaInstance


@shared_task
def check_drift() -> int:
    """Periodic: one drift check per push-mode OPA instance."""
    targets = drift.drift_targets()
    for environment, instance in targets:
        check_instance_drift.delay(environment.pk, instance.pk)
    return len(targets)


@shared_task(autoretry_for=(OpaUnreachable,), retry_backoff=settings.GAVEL_PUBLISH_RETRY_BACKOFF,
             retry_backoff_max=60, retry_jitter=True, max_retries=3)
def check_instance_drift(environment_id: int, instance_id: int | None) -> int:
    """Compare what one instance runs with what Gavel published there; alert and re-push.
    `instance_id` None: the environment's own OPA (an environment without instances)."""
    environment = Environment.objects.get(pk=environment_id)
    if instance_id is None:
        targets = environment.targets()
        if not targets or targets[0].pk:  # instances were added meanwhile; the next periodic run checks them
            return 0
        instance = targets[0]
    else:
        instance = OpaInstance.objects.select_related("environment").get(pk=instance_id)
        if instance.decommissioned_at:  # taken out of service since the check was queued
            return 0
    return len(drift.check_instance(environment, instance))


@shared_task(autoretry_for=(OpaUnreachable, opa_authz.NotYetApplied), retry_backoff=settings.GAVEL_PUBLISH_RETRY_BACKOFF,
             retry_backoff_max=60, retry_jitter=True, max_retries=30)
def rotate_gavel_token(instance_id: int) -> str:
    """Roll Gavel's token to one OPA (opa_authz.py), waiting for OPA's bundle downloads; each
    step is safe to run again."""
    return opa_authz.rotate(instance_id).token_state
