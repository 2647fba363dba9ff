from django.apps import AppConfig
from django.db.models.signals import post_migrate

from .roles import ROLES, sync_role_groups


def _sync_roles(sender, **kwargs):
    # Keeps the groups in step with console/roles.py after every migrate (and after a
    # test database flush, which empties the tables the roles migration filled).
    from django.contrib.auth.models import Group, Permission  # models load after this module

    sync_role_groups(Group, Permission)


class ConsoleConfig(AppConfig):
    name = "console"
    verbose_name = "Console"

    def ready(self):
        post_migrate.connect(_sync_roles, sender=self)
        # The activity log names a role by its label, but sits below the console in the import contract,
        # so the console hands it the labels.
        from activity import entries

        entries.ROLE_LABELS.update({role.group: role.label for role in ROLES})
