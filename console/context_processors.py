from alerts.models import Alert
from core.models import LogBatch

from .inbox import waiting_for
from .roles import roles_of


def navigation(request):
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated:
        return {}
    return {
        "user_roles": roles_of(user),
        "can_view_decisions": user.has_perm("core.view_decision"),
        "firing_alerts": _open_alerts(user),
        "failed_batches": _failed_batches(user),
        # alerts have their own badge already; the rest are counted in console/_nav_counts.html
        "waiting_counts": [w for w in waiting_for(user) if w.kind != "alerts"],
    }


def _open_alerts(user) -> int:
    if not user.has_perm("alerts.view_alert"):
        return 0
    return Alert.objects.filter(closed_at__isnull=True).count()


def _failed_batches(user) -> int:
    """Accepted batches the worker gave up on: decisions OPA was promised we would keep."""
    if not user.has_perm("core.view_decision"):
        return 0
    return LogBatch.objects.filter(status=LogBatch.Status.FAILED).count()
