"""The five roles of Gavel, as Django groups, and the permissions each one holds.

This table is the single source: a migration creates the groups from it, and views and
the API check the permissions, never the group names.
"""
from dataclasses import dataclass


@dataclass(frozen=True)
class Role:
    group: str
    label: str
    summary: str
    permissions: tuple[str, ...]  # "app_label.codename"


READ_POLICIES = (
    "policies.view_policy", "policies.view_policyversion", "policies.view_publication",
    "policies.view_environment", "policies.view_canarysetting", "policies.view_killswitchchange",
    "policies.view_policyexception",
)
READ_DECISIONS = ("audit.view_decision",)
REQUEST_EXCEPTIONS = ("policies.add_policyexception",)
ROLL_OUT = (
    "policies.add_canarysetting", "policies.add_killswitchchange", "policies.approve_policyexception",
)

ROLES = (
    Role("compliance_officer", "Compliance officer", "Reads what the policies say.", READ_POLICIES),
    Role(
        "security_admin",
        "Security admin",
        "Rolls policies out to OPA and grants exceptions.",
        READ_POLICIES + READ_DECISIONS + REQUEST_EXCEPTIONS + ROLL_OUT + ("policies.publish_policyversion",),
    ),
    Role("reviewer", "Reviewer", "Approves or rejects held actions.", READ_POLICIES + READ_DECISIONS),
    Role(
        "auditor",
        "Auditor",
        "Searches and exports decision history.",
        READ_POLICIES + READ_DECISIONS + ("audit.export_decision",),
    ),
    Role(
        "policy_author",
        "Policy author",
        "Writes, tests and publishes Rego.",
        READ_POLICIES
        + READ_DECISIONS
        + REQUEST_EXCEPTIONS
        + ("policies.add_policy", "policies.add_policyversion", "policies.publish_policyversion"),
    ),
)

ROLES_BY_GROUP = {role.group: role for role in ROLES}


def roles_of(user) -> list[Role]:
    if not user.is_authenticated:
        return []
    names = {g.name for g in user.groups.all()}
    return [role for role in ROLES if role.group in names]


def sync_role_groups(group_model, permission_model) -> None:
    """Make each role's group hold exactly the permissions listed above.

    Takes the models as arguments so the roles migration can pass its historical ones.
    """
    for role in ROLES:
        group, _ = group_model.objects.get_or_create(name=role.group)
        permissions = []
        for dotted in role.permissions:
            app_label, codename = dotted.split(".")
            permissions.append(permission_model.objects.get(content_type__app_label=app_label, codename=codename))
        group.permissions.set(permissions)
