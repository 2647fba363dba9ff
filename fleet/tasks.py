from celery import shared_task
from django.conf import settings

from core.opa.client import OpaUnreachable

from . import drift, opa_authz
from .delivery import storage
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


@shared_task(autoretry_for=(storage.StorageUnavailable,), retry_backoff=settings.GAVEL_PUBLISH_RETRY_BACKOFF,
             retry_backoff_max=60, retry_jitter=True, max_retries=8)
def publish_bundle(environment_id: int) -> str:
    """Write an object-storage environment's bundle to the bucket when it changed (delivery/storage.py).
    Safe to run twice: the same bundle is the same bytes, and is not written again."""
    environment = Environment.objects.filter(pk=environment_id).first()
    if environment is None or not environment.in_object_storage:
        return "not in object storage"
    try:
        published = storage.publish(environment_id)
    except storage.StorageUnavailable as exc:
        storage.record_failure(environment_id, str(exc))
        raise
    return f"{published.key} {'written' if published.written else 'unchanged'} ({published.revision})"
