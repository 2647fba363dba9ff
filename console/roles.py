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
    "fleet.view_environment", "rollout.view_canarysetting", "rollout.view_killswitchchange",
    "rollout.view_policyexception", "policies.view_publishrequest", "policies.view_publishevent",
)
READ_DECISIONS = ("core.view_decision", "approvals.view_heldaction", "alerts.view_alert", "alerts.view_alertrule")
REVIEW = ("approvals.review_heldaction",)
READ_ACTIVITY = ("activity.view_activityentry",)  # the append-only log of changes; nobody may write it
REQUEST_EXCEPTIONS = ("rollout.add_policyexception",)
ROLL_OUT = (
    "rollout.add_canarysetting", "rollout.add_killswitchchange", "rollout.approve_policyexception",
)

ROLES = (
    Role("compliance_officer", "Compliance officer", "Reads what the policies say.", READ_POLICIES),
    Role(
        "security_admin",
        "Security admin",
        "Rolls policies out to OPA and grants exceptions.",
        READ_POLICIES + READ_DECISIONS + REVIEW + REQUEST_EXCEPTIONS + ROLL_OUT + READ_ACTIVITY
        + ("policies.publish_policyversion", "policies.retire_policy", "fleet.manage_opa_credentials")
        + ("alerts.add_alertrule", "alerts.change_alertrule", "exports.view_exportrecord"),
    ),
    Role("reviewer", "Reviewer", "Approves or rejects held actions.", READ_POLICIES + READ_DECISIONS + REVIEW),
    Role(
        "auditor",
        "Auditor",
        "Searches and exports decision history.",
        READ_POLICIES + READ_DECISIONS + READ_ACTIVITY + ("core.export_decision", "exports.view_exportrecord"),
    ),
    Role(
        "policy_author",
        "Policy author",
        "Writes and tests Rego; asks for publication, which someone else approves.",
        READ_POLICIES
        + READ_DECISIONS
        + REQUEST_EXCEPTIONS
        + ("policies.add_policy", "policies.add_policyversion", "policies.publish_policyversion"),
    ),
)

# Not a person: the account an enforcement point's API token belongs to.
ENFORCEMENT_POINT = Role(
    "enforcement_point", "Enforcement point", "A service that asks OPA and holds actions for approval.",
    ("approvals.add_heldaction", "approvals.view_heldaction"),
)
ROLES = ROLES + (ENFORCEMENT_POINT,)

ROLES_BY_GROUP = {role.group: role for role in ROLES}


def roles_of(user) -> list[Role]:
    if not user.is_authenticated:
        return []
    names = {g.name for g in user.groups.all()}
    return [role for role in ROLES if role.group in names]


def sync_role_groups(group_model, permission_model) -> None:
    """Make each role's group hold exactly the permissions listed above.

    Takes the models as arguments so the roles migration can pass its historical ones. A
    permission whose model a later migration creates is skipped here; the post_migrate hook
    (console/apps.py) runs this again at the end of every migrate and fills it in.
    """
    for role in ROLES:
        group, _ = group_model.objects.get_or_create(name=role.group)
        permissions = []
        for dotted in role.permissions:
            app_label, codename = dotted.split(".")
            permissions += permission_model.objects.filter(content_type__app_label=app_label, codename=codename)
        group.permissions.set(permissions)
