"""CI checks keep no table of their own: each check is stored as decisions (core/store.py), marked
as coming from CI. This model only carries the permission to run one (no table is created)."""
from django.db import models


class CiCheck(models.Model):
    class Meta:
        managed = False
        default_permissions = ()
        permissions = [("run_check", "Can check documents against an environment's policies from CI")]
