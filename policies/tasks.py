from celery import shared_task
from django.conf import settings

from .models import Publication
from .opa import OpaUnreachable
from .services import attempt_publication


@shared_task(
    bind=True,
    autoretry_for=(OpaUnreachable,),
    retry_backoff=settings.GAVEL_PUBLISH_RETRY_BACKOFF,
    retry_backoff_max=600,
    retry_jitter=True,
    max_retries=settings.GAVEL_PUBLISH_MAX_RETRIES,
)
def push_publication(self, publication_id: int) -> str:
    """Push one publication to OPA; retried with backoff while OPA is unreachable."""
    # Read fresh on every retry: the publication may have been superseded meanwhile.
    publication = Publication.objects.select_related("version__policy").get(pk=publication_id)
    final = self.request.retries >= self.max_retries
    return attempt_publication(publication, final_attempt=final).status
