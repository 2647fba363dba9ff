"""Who may call the API: Django's model permissions for every method (reads included), and
permission classes named after one permission, for actions. Roles hold the permissions
(console/roles.py); every feature's API checks them through these."""
from rest_framework.permissions import BasePermission, DjangoModelPermissions


class RoleModelPermissions(DjangoModelPermissions):
    """Model permissions for every method, reads included (DRF's default lets any user read)."""

    perms_map = {
        **DjangoModelPermissions.perms_map,
        "GET": ["%(app_label)s.view_%(model_name)s"],
        "HEAD": ["%(app_label)s.view_%(model_name)s"],
        "OPTIONS": ["%(app_label)s.view_%(model_name)s"],
    }


class HasPerm(BasePermission):
    """Permission classes built from a permission name: HasPerm.of("policies.x")."""

    perm = ""

    @classmethod
    def of(cls, perm):
        return type(f"Has_{perm}", (cls,), {"perm": perm})

    def has_permission(self, request, view):
        return request.user.has_perm(self.perm)
