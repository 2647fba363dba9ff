from django.apps import AppConfig


class ApprovalsConfig(AppConfig):
    name = "approvals"
    verbose_name = "Approvals"

    def ready(self):
        from core.store import decisions_stored

        from .services import record_decisions

        # Decisions that need a person become held actions; retries use up their approval.
        decisions_stored.connect(record_decisions, dispatch_uid="approvals.record_decisions")
