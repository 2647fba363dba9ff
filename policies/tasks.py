from celery import shared_task
from django.conf import settings

from . import runtime
from .models import Environment, Publication
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
