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
MANAGE_USERS = ("auth.view_user", "auth.add_user", "auth.change_user")  # people and their roles (users.py)
ROLL_OUT = (
    "rollout.add_canarysetting", "rollout.add_killswitchchange", "rollout.approve_policyexception",
)

ROLES = (
    Role("compliance_officer", "Compliance officer", "Reads what the policies say.", READ_POLICIES),
    Role(
        "security_admin",
        "Security admin",
        "Rolls policies out to OPA, grants exceptions and manages who holds which role.",
        READ_POLICIES + READ_DECISIONS + REVIEW + REQUEST_EXCEPTIONS + ROLL_OUT + READ_ACTIVITY
        + ("policies.publish_policyversion", "policies.rollback_policy", "policies.retire_policy")
        + ("fleet.manage_opa_credentials", "core.retry_logbatch")
        + ("alerts.add_alertrule", "alerts.change_alertrule", "exports.view_exportrecord")
        + ("checks.run_check",)
        + MANAGE_USERS,
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
        + ("policies.add_policy", "policies.add_policyversion", "policies.publish_policyversion")
        + ("checks.run_check",),
    ),
)

# Not a person: the account an enforcement point's API token belongs to.
ENFORCEMENT_POINT = Role(
    "enforcement_point", "Enforcement point", "A service that asks OPA and holds actions for approval.",
    ("approvals.add_heldaction", "approvals.view_heldaction"),
)
# Not a person: the account a CI pipeline's token belongs to (`gavel check`, verify, replay, and
# `conftest pull` of the published policies). It reads no decision: replay gives it counts only.
CI_PIPELINE = Role(
    "ci_pipeline", "CI pipeline", "A pipeline that checks changes against the published policies.",
    ("checks.run_check",),
)
ROLES = ROLES + (ENFORCEMENT_POINT, CI_PIPELINE)

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


# --- who may use each route -------------------------------------------------------------------
# URL name (namespace:name as routed) -> HTTP method -> the permission the view checks, or one of
# the three principals below. tests/console/test_role_matrix.py reads its expectations from this
# table and fails for a routed name or method missing here, so no route ships without a decision.
PUBLIC = "public"        # anyone, signed in or not (the login page)
SIGNED_IN = "signed-in"  # any role
OPA_TOKEN = "opa-token"  # OPA's bearer token (its instance token, a bundle token), never a person
METRICS_TOKEN = "metrics-token"  # Prometheus: GAVEL_METRICS_TOKEN or an address in GAVEL_METRICS_ALLOWED

_VIEW_POLICY, _VIEW_DECISION = "policies.view_policy", "core.view_decision"
_PUBLISH, _MANAGE_OPA = "policies.publish_policyversion", "fleet.manage_opa_credentials"
_EXPORT, _EXPORT_RECORDS = "core.export_decision", "exports.view_exportrecord"
_HELD, _REVIEW = "approvals.view_heldaction", "approvals.review_heldaction"
_APPROVE_EXCEPTION, _CANARY = "rollout.approve_policyexception", "rollout.add_canarysetting"
_CI_CHECK = "checks.run_check"

ROUTE_PERMISSIONS: dict[str, dict[str, str]] = {
    "home": {"GET": SIGNED_IN},
    "login": {"GET": PUBLIC, "POST": PUBLIC},
    "logout": {"POST": PUBLIC},
    "api-schema": {"GET": SIGNED_IN},
    "api-docs": {"GET": SIGNED_IN},  # Swagger UI; the schema it reads needs a login too
    "api-redoc": {"GET": SIGNED_IN},
    "api-root": {"GET": SIGNED_IN},
    # policies, versions, two-person publishing; rollback belongs to security admins
    "policies:list": {"GET": _VIEW_POLICY},
    "policies:create": {"GET": "policies.add_policy", "POST": "policies.add_policy"},
    "policies:detail": {"GET": _VIEW_POLICY},
    "policies:rollback": {"POST": "policies.rollback_policy"},
    "policies:retire": {"POST": "policies.retire_policy"},
    "policies:version_create": {"GET": "policies.add_policyversion", "POST": "policies.add_policyversion"},
    # Authoring tools that save nothing but run authors' Rego in the sandbox: policy authors.
    "policies:draft_check": {"POST": "policies.add_policyversion"},
    "policies:playground": {"GET": "policies.add_policyversion", "POST": "policies.add_policyversion"},
    "policies:version": {"GET": "policies.view_policyversion"},
    "policies:version_diff": {"GET": "policies.view_policyversion"},
    "policies:version_publications": {"GET": "policies.view_publication"},
    "policies:version_publish": {"POST": _PUBLISH},
    "policies:request_approve": {"POST": _PUBLISH},
    "policies:request_reject": {"POST": _PUBLISH},
    "policies:version_replay": {"POST": _VIEW_DECISION},
    "policies:version_summary": {"GET": "policies.view_policyversion"},
    "policies:version_summary_print": {"GET": "policies.view_policyversion"},
    "policies:version_summary_diff": {"GET": "policies.view_policyversion"},
    # Evidence for auditors: the print views and their PDFs (policies/evidence/).
    "policies:version_evidence": {"GET": "policies.view_policyversion"},
    "policies:version_evidence_pdf": {"GET": "policies.view_policyversion"},
    "policies:version_diff_evidence": {"GET": "policies.view_policyversion"},
    "policies:version_diff_evidence_pdf": {"GET": "policies.view_policyversion"},
    "policy-list": {"GET": _VIEW_POLICY, "POST": "policies.add_policy"},
    "policy-detail": {"GET": _VIEW_POLICY},
    "policy-history": {"GET": _VIEW_POLICY},
    "policy-retire": {"POST": "policies.retire_policy"},
    "policy-rollback": {"POST": "policies.rollback_policy"},
    "policy-version-list": {"GET": _VIEW_POLICY, "POST": "policies.add_policyversion"},
    "policy-version-detail": {"GET": _VIEW_POLICY},
    "policy-version-diff": {"GET": _VIEW_POLICY},
    "policy-version-publish": {"POST": _PUBLISH},
    "policy-version-replay": {"POST": _VIEW_DECISION},
    "publication-list": {"GET": _VIEW_POLICY},
    "publication-detail": {"GET": _VIEW_POLICY},
    "publish-request-list": {"GET": _VIEW_POLICY},
    "publish-request-detail": {"GET": _VIEW_POLICY},
    "publish-request-approve": {"POST": _PUBLISH},
    "publish-request-reject": {"POST": _PUBLISH},
    # rollout and exceptions
    "rollout:overview": {"GET": "rollout.view_canarysetting"},
    "rollout:kill_switch": {"POST": "rollout.add_killswitchchange"},
    "rollout:policy": {"GET": "rollout.view_canarysetting", "POST": _CANARY},
    "rollout:preview": {"POST": "rollout.view_canarysetting"},
    "exceptions:list": {"GET": "rollout.view_policyexception"},
    "exceptions:create": {"GET": "rollout.add_policyexception", "POST": "rollout.add_policyexception"},
    "exceptions:detail": {"GET": "rollout.view_policyexception"},
    "exceptions:approve": {"POST": _APPROVE_EXCEPTION},
    "exceptions:reject": {"POST": _APPROVE_EXCEPTION},
    "exceptions:revoke": {"POST": _APPROVE_EXCEPTION},
    "canary-setting-list": {"GET": "rollout.view_canarysetting", "POST": _CANARY},
    "canary-setting-detail": {"GET": "rollout.view_canarysetting"},
    "exception-list": {"GET": "rollout.view_policyexception", "POST": "rollout.add_policyexception"},
    "exception-detail": {"GET": "rollout.view_policyexception"},
    "exception-approve": {"POST": _APPROVE_EXCEPTION},
    "exception-reject": {"POST": _APPROVE_EXCEPTION},
    "exception-revoke": {"POST": _APPROVE_EXCEPTION},
    # environments and OPA's credentials
    "fleet:environments": {"GET": "fleet.view_environment"},
    "fleet:add_instance": {"POST": _MANAGE_OPA},
    "fleet:issue_token": {"POST": _MANAGE_OPA},
    "fleet:revoke_token": {"POST": _MANAGE_OPA},
    "fleet:rotate_gavel_token": {"POST": _MANAGE_OPA},
    "fleet:decommission_instance": {"POST": _MANAGE_OPA},
    "environment-list": {"GET": "fleet.view_environment"},
    "environment-detail": {"GET": "fleet.view_environment"},
    "environment-kill-switch": {"POST": "rollout.add_killswitchchange"},
    "environment-instance-list": {"GET": "fleet.view_environment", "POST": _MANAGE_OPA},
    "environment-instance-detail": {"GET": "fleet.view_environment"},
    "environment-instance-tokens": {"POST": _MANAGE_OPA},
    "environment-instance-revoke-token": {"POST": _MANAGE_OPA},
    "environment-instance-rotate-gavel-token": {"POST": _MANAGE_OPA},
    "environment-instance-decommission": {"POST": _MANAGE_OPA},
    # the audit trail, alerts, the activity log
    "audit:list": {"GET": _VIEW_DECISION},
    "audit:dashboard": {"GET": _VIEW_DECISION},
    "audit:ingest": {"GET": _VIEW_DECISION},
    # a failed batch's body as OPA sent it, and sending it to the worker again
    "audit:failed-download": {"GET": _VIEW_DECISION},
    "audit:failed-retry": {"POST": "core.retry_logbatch"},  # runs ingest again: security admins
    "audit:detail": {"GET": _VIEW_DECISION},
    "audit:explain": {"GET": _VIEW_DECISION},
    "decision-list": {"GET": _VIEW_DECISION},
    "decision-detail": {"GET": _VIEW_DECISION},
    "alerts:list": {"GET": "alerts.view_alert"},
    "alerts:rule-new": {"GET": "alerts.add_alertrule", "POST": "alerts.add_alertrule"},
    "alerts:rule-edit": {"GET": "alerts.change_alertrule", "POST": "alerts.change_alertrule"},
    "activity:list": {"GET": "activity.view_activityentry"},
    "activity-list": {"GET": "activity.view_activityentry"},
    # people and their roles: security admins (console/users.py)
    "users:list": {"GET": "auth.view_user"},
    "users:create": {"GET": "auth.add_user", "POST": "auth.add_user"},
    "users:detail": {"GET": "auth.view_user", "POST": "auth.change_user"},
    "users:active": {"POST": "auth.change_user"},
    "users:password": {"POST": "auth.change_user"},
    # exports: every auditor may download any export (each could run the same search)
    "exports:list": {"GET": _EXPORT_RECORDS},
    "exports:new": {"POST": _EXPORT},
    "exports:detail": {"GET": _EXPORT_RECORDS},
    "exports:download": {"GET": _EXPORT},
    "exports:delete_file": {"POST": _EXPORT},  # one's own; someone else's needs exports.delete_exportrecord
    "exports:manifest": {"GET": _EXPORT_RECORDS},
    "exports:verifier": {"GET": _EXPORT_RECORDS},
    "exports:public_key": {"GET": _EXPORT_RECORDS},
    "export-list": {"GET": _EXPORT_RECORDS, "POST": _EXPORT},
    "export-detail": {"GET": _EXPORT_RECORDS},
    "export-download": {"GET": _EXPORT},
    "export-delete-file": {"POST": _EXPORT},
    # held actions
    "approvals:queue": {"GET": _HELD},
    "approvals:export": {"GET": _EXPORT},
    "approvals:detail": {"GET": _HELD},
    "approvals:review": {"POST": _REVIEW},
    "approvals:state": {"GET": _HELD},
    "approvals:bulk_review": {"POST": _REVIEW},
    "approvals:save_search": {"POST": _HELD},  # one's own saved searches of the queue
    "approvals:delete_search": {"POST": _HELD},
    "approval-list": {"GET": _HELD, "POST": "approvals.add_heldaction"},
    "approval-detail": {"GET": _HELD},
    "approval-review": {"POST": _REVIEW},
    # CI checks (`gavel`, `conftest pull`): policy authors, security admins, CI pipelines' accounts
    "ci-check": {"POST": _CI_CHECK},
    "ci-verify": {"POST": _CI_CHECK},
    "ci-replay": {"POST": _CI_CHECK},
    "ci-policies": {"GET": _CI_CHECK},
    "oci-base": {"GET": _CI_CHECK},  # `conftest pull oci://...` (and `docker login`), HEAD as GET
    "oci-manifest": {"GET": _CI_CHECK},
    "oci-blob": {"GET": _CI_CHECK},
    # Prometheus
    "metrics": {"GET": METRICS_TOKEN},
    # OPA's own endpoints
    "opa-logs": {"POST": OPA_TOKEN},
    "opa-bundle": {"GET": OPA_TOKEN},
    "opa-status": {"POST": OPA_TOKEN},
    "opa-authz": {"GET": OPA_TOKEN},
}


def groups_allowed(route: str, method: str) -> frozenset[str]:
    """The role groups that may use a route with a method, read from ROUTE_PERMISSIONS."""
    needed = ROUTE_PERMISSIONS[route][method]
    if needed in (PUBLIC, SIGNED_IN):
        return frozenset(role.group for role in ROLES)
    if needed in (OPA_TOKEN, METRICS_TOKEN):
        return frozenset()
    return frozenset(role.group for role in ROLES if needed in role.permissions)
