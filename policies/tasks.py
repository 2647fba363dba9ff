from celery import shared_task

from core.opa.client import RETRY_WHILE_UNREACHABLE

from .models import Publication
from .services import attempt_publication


@shared_task(bind=True, **RETRY_WHILE_UNREACHABLE)
def push_publication(self, publication_id: int) -> str:
    """Push one publication to OPA; retried with backoff while OPA is unreachable."""
    # Read fresh on every retry: the publication may have been superseded meanwhile.
    publication = Publication.objects.select_related("version__policy").get(pk=publication_id)
    final = self.request.retries >= self.max_retries
    return attempt_publication(publication, final_attempt=final).status
