"""The approvals OPA honours: `data.gavel_approvals`, per policy each approved action's input
and deadline, so an enforcement point's retry naming the approval is allowed by OPA itself."""
from django.conf import settings
from django.utils import timezone

from core.opa.client import opa_client
from fleet.models import Environment

from .models import HeldAction

DATA_PATH = "gavel_approvals"


def approvals_document(now=None) -> dict[str, list[dict]]:
    """What OPA needs to allow approved retries: per policy, each approval's input and deadline."""
    now = now or timezone.now()
    usable = HeldAction.objects.filter(status=HeldAction.Status.APPROVED, consumed_at__isnull=True,
                                       valid_until__gt=now, policy__isnull=False).select_related("policy")
    document: dict[str, list[dict]] = {}
    for held in usable:
        document.setdefault(held.policy.name, []).append({
            "id": held.decision_id, "input": held.input,
            "valid_until_ns": int(held.valid_until.timestamp() * 1_000_000_000),
        })
    return document


def push_approvals() -> int:
    """PUT the approvals document to every environment's OPA. Raises OpaUnreachable to retry."""
    document = approvals_document()
    environments = list(Environment.objects.all())
    # Pull environments get the document in their bundle: OPA refuses REST writes there.
    targets = {(i.url or e.target_url, i.token) for e in environments if not e.is_pull for i in e.targets()}
    for environment in environments:
        environment.bundle_changed()  # those in object storage get it written to their bucket
    for url, token in sorted(targets if environments else {(settings.OPA_URL, "")}):
        with opa_client(url, token=token or None) as opa:
            opa.put_data(DATA_PATH, document)
    return sum(len(items) for items in document.values())
