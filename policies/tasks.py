from celery import shared_task
from django.conf import settings

from . import drift, opa_authz, runtime
from .models import DriftAlert, Environment, OpaInstance, Publication
from .opa import OpaUnreachable
from .services import attempt_publication

RETRY = dict(
    autoretry_for=(OpaUnreachable,),
    retry_backoff=settings.GAVEL_PUBLISH_RETRY_BACKOFF,
    retry_backoff_max=600,
    retry_jitter=True,
    max_retries=settings.GAVEL_PUBLISH_MAX_RETRIES,
)


@shared_task(bind=True, **RETRY)
def push_publication(self, publication_id: int) -> str:
    """Push one publication to OPA; retried with backoff while OPA is unreachable."""
    # Read fresh on every retry: the publication may have been superseded meanwhile.
    publication = Publication.objects.select_related("version__policy").get(pk=publication_id)
    final = self.request.retries >= self.max_retries
    return attempt_publication(publication, final_attempt=final).status


@shared_task(**RETRY)
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


@shared_task(autoretry_for=(drift.WebhookFailed,), retry_backoff=5, retry_jitter=True, max_retries=8)
def send_drift_webhook(alert_id: int) -> bool:
    """POST a drift alert (or its escalation) to GAVEL_DRIFT_WEBHOOK_URL."""
    alert = DriftAlert.objects.select_related("environment", "instance", "policy").get(pk=alert_id)
    return drift.send_webhook(alert)


@shared_task(autoretry_for=(OpaUnreachable, opa_authz.NotYetApplied), retry_backoff=settings.GAVEL_PUBLISH_RETRY_BACKOFF,
             retry_backoff_max=60, retry_jitter=True, max_retries=30)
def rotate_gavel_token(instance_id: int) -> str:
    """Roll Gavel's token to one OPA (opa_authz.py), waiting for OPA's bundle downloads; each
    step is safe to run again."""
    return opa_authz.rotate(instance_id).token_state
