from celery import shared_task

from core.opa.client import OpaUnreachable

from . import expiry, opa_data


@shared_task(autoretry_for=(OpaUnreachable,), retry_backoff=2, retry_jitter=True, max_retries=10)
def push_approvals() -> int:
    """Replace data.gavel_approvals in OPA with the approvals a retry may use now."""
    return opa_data.push_approvals()


@shared_task
def sweep_held_actions() -> tuple[int, int]:
    """Periodic: held actions past their time limit expire; those past half of it escalate.
    Approvals past their validity leave OPA's data on the same beat."""
    counts = expiry.sweep()
    push_approvals.delay()
    return counts
