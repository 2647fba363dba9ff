"""The role matrix: every URL pattern the project routes, every method it serves, against
every principal: no login, a session of each role, an API token of each role (and a wrong
token), and OPA's bearer token (GAVEL_OPA_TOKEN, or an environment's bundle token) for
/api/v1/opa/*.

Who may use a route is not decided here: console/roles.py's ROUTE_PERMISSIONS names the
permission each route and method needs, and the roles holding it are the ones expected to get
through (groups_allowed). MATRIX only says how to exercise each route.
test_every_routed_pattern_has_an_entry walks Django's resolver and fails for a pattern (or a
method of a viewset route) missing from either table, so a new view cannot ship without a
decision about who may use it.

Each cell runs in a transaction that is rolled back, so every principal meets the same data and
an allowed action (approve, retire, kill switch...) really happens and is checked:
  - allowed: the expected success status (a page POST also flashes no error);
  - denied, page: no login -> 302 to the login page; logged in without the permission -> 403;
  - denied, API: no or a wrong credential -> 401; a role without the permission -> 403;
  - OPA endpoints (/api/v1/opa/*): only OPA's bearer token; every user principal -> 401.
"""
from __future__ import annotations

import gzip
import json
import uuid
from dataclasses import dataclass
from datetime import timedelta

import pytest
from django.conf import settings
from django.contrib.messages import ERROR, get_messages
from django.db import transaction
from django.test import override_settings
from django.urls import URLPattern, URLResolver, get_resolver
from django.utils import timezone
from rest_framework.authtoken.models import Token

from alerts.models import AlertRule
from approvals import services as approvals
from checks import registry
from console import roles
from core.models import LogBatch
from exports import services as exports
from fleet import credentials as opa_credentials
from fleet import opa_authz
from fleet.models import Environment
from policies import review, services
from policies.models import Policy, Publication
from rollout import canary
from rollout import exceptions as policy_exceptions
from rollout import services as rollout_services
from tests.factories import SIMPLE_POLICY, DecisionFactory, PolicyFactory, UserFactory
from tests.support import stack

pytestmark = pytest.mark.django_db

ROLES = ("compliance_officer", "security_admin", "reviewer", "auditor", "policy_author", "enforcement_point",
         "ci_pipeline")
assert set(ROLES) == set(roles.ROLES_BY_GROUP)

HELD_RESULT = {"allow": False, "require_approval": True, "reasons": ["deletes in prod need a reviewer"],
               "policy": "budget", "policy_version": 1}


@dataclass(frozen=True)
class Case:
    """One request. `url` and `data` are callables of the world (so ids can be filled in)."""

    method: str
    url: object
    data: object = None
    ok: tuple = ()  # success statuses; default 200 for GET, 302 for page POSTs, 2xx for API POSTs
    kind: str = "page"  # page | api | opa | public | metrics
    opa_token: object = None  # OPA's credential for an opa case (default GAVEL_OPA_TOKEN)

    def expected_ok(self):
        if self.ok:
            return self.ok
        if self.method == "GET":
            return (200,)
        return (302,) if self.kind == "page" else (200, 201, 202, 204)


def page(method, url, data=None, ok=()):
    return Case(method, url, data, ok, "page")


def api(method, url, data=None, ok=()):
    return Case(method, url, data, ok, "api")


def metrics(method, url):
    """Prometheus' scrape: GAVEL_METRICS_TOKEN as a bearer token, never a user's role."""
    return Case(method, url, ok=(200,), kind="metrics")


def opa(method, url, data=None, ok=(204,), token=None):
    return Case(method, url, data, ok, "opa", token)


ALERT_RULE_FORM = {"name": "Deny spike", "metric": "deny_rate", "threshold": "20", "window_minutes": "5",
                   "min_decisions": "20", "environment": "", "policy": "", "enabled": "on"}
BUNDLE_TOKEN = "matrix-bundle-token"


def pull_environment_token(w):
    """The default environment made a pull environment with a bundle token (fleet/bundles.py)."""
    from fleet.models import Environment

    environment = Environment.objects.get(name=w.env)
    Environment.objects.filter(pk=environment.pk).update(delivery=Environment.Delivery.PULL)
    environment.set_bundle_token(BUNDLE_TOKEN)
    return BUNDLE_TOKEN


def rollout_form(reason="canary"):
    return {"mode": "dry-run", "enforce_percentage": 10, "enforce_users": "", "enforce_agents": "",
            "dry_run_users": "", "user_field": "user.id", "agent_field": "agent.id", "reason": reason}


def exception_form(w):
    return {"policy": "budget", "environment": w.env, "match": "user.id = dana", "justification": "month end",
            "ticket": "SEC-9", "expires_at": (timezone.now() + timedelta(days=3)).strftime("%Y-%m-%dT%H:%M")}


def exception_api_body(w):
    return {"policy": "budget", "environment": w.env, "match": [{"field": "user.id", "value": "dana"}],
            "justification": "month end", "ticket": "SEC-9",
            "expires_at": (timezone.now() + timedelta(days=3)).isoformat()}


def log_batch(w):
    event = {"decision_id": str(uuid.uuid4()), "timestamp": "2026-11-27T08:00:00Z", "path": "gavel/budget/decision",
             "input": {"user": {"id": "dana"}}, "result": {"allow": True}}
    return gzip.compress(json.dumps([event]).encode())


V2 = "/policies/budget/v2"
A = "/api/v1"

# name (namespace:name as routed) -> the requests that exercise it, with who may make them.
MATRIX: dict[str, list[Case]] = {
    "home": [page("GET", "/")],
    "login": [Case("GET", "/login/", kind="public"),
              Case("POST", "/login/", data={"username": "nobody", "password": "wrong"}, kind="public", ok=(200,))],
    "logout": [Case("POST", "/logout/", kind="public", ok=(302,))],
    # --- policies
    "policies:list": [page("GET", "/policies/")],
    "policies:create": [
        page("GET", "/policies/new/"),
        page("POST", "/policies/new/",
             lambda w: {"name": "fresh", "title": "Fresh", "message": "first",
                        "source": SIMPLE_POLICY.format(name="fresh")}),
    ],
    "policies:detail": [page("GET", "/policies/budget/")],
    "policies:rollback": [page("POST", "/policies/budget/rollback/", {"reason": "v2 misbehaves"})],
    "policies:retire": [page("POST", "/policies/budget/retire/", {"reason": "unused"})],
    "policies:version_create": [
        page("GET", "/policies/budget/versions/new/"),
        page("POST", "/policies/budget/versions/new/",
             lambda w: {"source": SIMPLE_POLICY.format(name="budget") + "\n# v3\n", "tests": "", "message": "v3"}),
    ],
    "policies:version": [page("GET", f"{V2}/")],
    "policies:version_diff": [page("GET", f"{V2}/diff/")],
    "policies:version_publications": [page("GET", f"{V2}/publications/")],
    "policies:version_publish": [page("POST", "/policies/budget/v1/publish/", {"reason": "ship v1"})],
    "policies:request_approve": [
        page("POST", lambda w: f"{V2}/requests/{w.publish_request.pk}/approve/", {"reason": "ok"})],
    "policies:request_reject": [
        page("POST", lambda w: f"{V2}/requests/{w.publish_request.pk}/reject/", {"reason": "no"})],
    "policies:version_replay": [page("POST", f"{V2}/replay/", {"last": "10"}, ok=(200,))],
    "policies:version_summary": [page("GET", f"{V2}/summary/")],
    "policies:version_summary_print": [page("GET", f"{V2}/summary/print/")],
    "policies:version_summary_diff": [page("GET", f"{V2}/summary/diff/1/")],
    "policies:version_evidence": [page("GET", f"{V2}/evidence/")],
    "policies:version_evidence_pdf": [page("GET", f"{V2}/evidence.pdf")],
    "policies:version_diff_evidence": [page("GET", f"{V2}/evidence/from-v1/")],
    "policies:version_diff_evidence_pdf": [page("GET", f"{V2}/evidence/from-v1.pdf")],
    "policies:draft_check": [page("POST", "/policies/draft/check/",
                                  {"source": SIMPLE_POLICY.format(name="budget"), "policy": "budget", "quick": "1"},
                                  ok=(200,))],
    "policies:playground": [
        page("GET", "/policies/budget/playground/"),
        page("POST", "/policies/budget/playground/", {"against": "1", "input": '{"user": {"role": "admin"}}'},
             ok=(200,)),
    ],
    # --- rollout
    "rollout:overview": [page("GET", "/rollout/")],
    "rollout:kill_switch": [
        page("POST", lambda w: f"/rollout/{w.env}/kill-switch/", {"engaged": "on", "reason": "incident"})],
    "rollout:policy": [
        page("GET", lambda w: f"/rollout/{w.env}/budget/"),
        page("POST", lambda w: f"/rollout/{w.env}/budget/", rollout_form()),
    ],
    "rollout:preview": [page("POST", lambda w: f"/rollout/{w.env}/budget/preview/", rollout_form(),
                             ok=(200,))],
    # --- exceptions
    "exceptions:list": [page("GET", "/exceptions/")],
    "exceptions:create": [
        page("GET", "/exceptions/new/"),
        page("POST", "/exceptions/new/", exception_form),
    ],
    "exceptions:detail": [page("GET", lambda w: f"/exceptions/{w.pending_exception.pk}/")],
    "exceptions:approve": [
        page("POST", lambda w: f"/exceptions/{w.pending_exception.pk}/approve/", {"comment": "ok"}, ok=(200,)),
        page("POST", lambda w: f"/exceptions/{w.pending_exception.pk}/approve/", {"comment": "ok", "confirmed": "yes"}),
    ],
    "exceptions:reject": [page("POST", lambda w: f"/exceptions/{w.pending_exception.pk}/reject/", {"comment": "no"})],
    "exceptions:revoke": [
        page("POST", lambda w: f"/exceptions/{w.active_exception.pk}/revoke/", {"reason": "done"}, ok=(200,)),
        page("POST", lambda w: f"/exceptions/{w.active_exception.pk}/revoke/", {"reason": "done", "confirmed": "yes"}),
    ],
    # --- audit trail and approvals
    "audit:list": [page("GET", "/audit/")],
    "audit:dashboard": [page("GET", "/audit/dashboard/")],
    "audit:ingest": [page("GET", "/audit/ingest/")],
    "audit:failed-download": [page("GET", lambda w: f"/audit/ingest/failed/{w.failed_batch.pk}/download/")],
    "audit:failed-retry": [page("POST", lambda w: f"/audit/ingest/failed/{w.failed_batch.pk}/retry/")],
    "alerts:list": [page("GET", "/audit/alerts/")],
    "alerts:rule-new": [
        page("GET", "/audit/alerts/rules/new/"),
        page("POST", "/audit/alerts/rules/new/", ALERT_RULE_FORM)],
    "alerts:rule-edit": [
        page("GET", lambda w: f"/audit/alerts/rules/{w.alert_rule.pk}/"),
        page("POST", lambda w: f"/audit/alerts/rules/{w.alert_rule.pk}/", ALERT_RULE_FORM)],
    "exports:list": [page("GET", "/audit/exports/")],
    "exports:new": [page("POST", "/audit/exports/new/", {"query": "outcome=allow", "format": "csv"},
                              ok=(200,))],
    "exports:detail": [page("GET", lambda w: f"/audit/exports/{w.export.pk}/")],
    "exports:download": [page("GET", lambda w: f"/audit/exports/{w.export.pk}/download/")],
    # The world's export is the auditor's own; someone else's needs exports.delete_exportrecord, which no role holds.
    "exports:delete_file": [page("POST", lambda w: f"/audit/exports/{w.export.pk}/delete-file/")],
    "exports:manifest": [page("GET", lambda w: f"/audit/exports/{w.export.pk}/manifest.json")],
    "exports:verifier": [page("GET", "/audit/exports/verify_gavel_export.py")],
    "exports:public_key": [page("GET", "/audit/exports/public-key.txt")],
    "fleet:environments": [page("GET", "/environments/")],
    "fleet:add_instance": [page("POST", "/environments/edge/instances/", {"name": "opa-new"}, ok=(200,))],
    "fleet:issue_token": [page("POST", "/environments/edge/instances/opa-a/tokens/", ok=(200,))],
    "fleet:revoke_token": [
        page("POST", lambda w: f"/environments/edge/instances/opa-a/tokens/{w.credential.pk}/revoke/")],
    "fleet:rotate_gavel_token": [page("POST", "/environments/edge/instances/opa-a/gavel-token/rotate/")],
    "fleet:decommission_instance": [
        page("POST", "/environments/edge/instances/opa-a/decommission/", {"confirm": "opa-a"})],
    "audit:detail": [page("GET", lambda w: f"/audit/{w.decision.decision_id}/")],
    "audit:explain": [page("GET", lambda w: f"/audit/{w.decision.decision_id}/explain/")],
    "approvals:queue": [page("GET", "/approvals/")],
    "approvals:export": [page("GET", "/approvals/export.csv")],
    "approvals:detail": [page("GET", "/approvals/held-1/")],
    "approvals:review": [page("POST", "/approvals/held-1/review/", {"verdict": "reject", "comment": "no"})],
    "approvals:state": [page("GET", "/approvals/held-1/state/")],
    "approvals:bulk_review": [
        page("POST", "/approvals/review/", {"held": ["held-1"], "verdict": "reject", "comment": "no"})],
    "approvals:save_search": [page("POST", "/approvals/saved/", {"name": "mine", "query": "status=pending"})],
    # one's own saved search only: anyone else's (here none) is not found, after the route's check
    "approvals:delete_search": [page("POST", "/approvals/saved/999999/delete/", ok=(404,))],
    # --- the activity log (read-only: there is no route that changes it)
    "users:list": [page("GET", "/users/")],
    "users:create": [page("GET", "/users/new/"),
                     page("POST", "/users/new/", {"username": "newcomer", "roles": ["reviewer"]}, ok=(200,))],
    "users:detail": [page("GET", lambda w: f"/users/{w.users['auditor'].pk}/"),
                     page("POST", lambda w: f"/users/{w.users['auditor'].pk}/", {"roles": ["auditor", "reviewer"]})],
    "users:active": [page("POST", lambda w: f"/users/{w.users['reviewer'].pk}/active/", {"active": "no"})],
    "users:password": [page("POST", lambda w: f"/users/{w.users['reviewer'].pk}/password/", ok=(200,))],
    "activity:list": [page("GET", "/activity/")],
    # --- OPA's own endpoints: OPA's bearer token, never a user's role
    "opa-logs": [opa("POST", "/api/v1/opa/logs", log_batch),
                 opa("POST", "/api/v1/opa/logs", log_batch, token=lambda w: w.instance_token)],
    "opa-bundle": [opa("GET", lambda w: f"/api/v1/opa/bundles/{w.env}", ok=(200,), token=pull_environment_token)],
    "opa-status": [opa("POST", "/api/v1/opa/status", lambda w: json.dumps({"labels": {"id": "opa-1"}}).encode(),
                       token=pull_environment_token),
                   opa("POST", "/api/v1/opa/status", lambda w: json.dumps({"labels": {"id": "opa-1"}}).encode(),
                       token=lambda w: w.instance_token)],
    "opa-authz": [opa("GET", "/api/v1/opa/authz", ok=(200,), token=lambda w: w.instance_token)],
    # --- CI checks and Prometheus
    "ci-check": [api("POST", f"{A}/checks/", lambda w: {"environment": w.env, "documents": [
        {"file": "plan.json", "input": {"user": {"role": "admin"}}}]})],
    "ci-verify": [api("POST", f"{A}/checks/verify/", {"policy": "budget"})],
    "ci-replay": [api("POST", f"{A}/checks/replay/", {"policy": "budget", "version": 2, "last": 10})],
    "ci-policies": [api("GET", lambda w: f"{A}/checks/policies/{w.env}.tar.gz")],
    "oci-base": [api("GET", "/v2/")],
    "oci-manifest": [api("GET", lambda w: f"/v2/policies/{w.env}/manifests/latest")],
    "oci-blob": [api("GET", lambda w: f"/v2/policies/{w.env}/blobs/{registry.digest_of(b'{}')}")],  # the config
    "metrics": [metrics("GET", "/metrics")],
    # --- the API
    "api-schema": [api("GET", f"{A}/schema/")],
    "api-docs": [api("GET", f"{A}/docs/")],
    "api-redoc": [api("GET", f"{A}/redoc/")],
    "api-root": [api("GET", f"{A}/")],
    "policy-list": [
        api("GET", f"{A}/policies/"),
        api("POST", f"{A}/policies/",
            lambda w: {"name": "fresh", "title": "Fresh", "message": "first",
                       "source": SIMPLE_POLICY.format(name="fresh")}),
    ],
    "policy-detail": [api("GET", f"{A}/policies/budget/")],
    "policy-history": [api("GET", f"{A}/policies/budget/history/")],
    "policy-retire": [api("POST", f"{A}/policies/budget/retire/", {"reason": "unused"})],
    "policy-rollback": [api("POST", f"{A}/policies/budget/rollback/", {"reason": "v2 misbehaves"})],
    "policy-version-list": [
        api("GET", f"{A}/policies/budget/versions/"),
        api("POST", f"{A}/policies/budget/versions/",
            lambda w: {"source": SIMPLE_POLICY.format(name="budget") + "\n# v3\n", "message": "v3"}),
    ],
    "policy-version-detail": [api("GET", f"{A}/policies/budget/versions/2/")],
    "policy-version-diff": [api("GET", f"{A}/policies/budget/versions/2/diff/")],
    "policy-version-publish": [api("POST", f"{A}/policies/budget/versions/1/publish/", {"reason": "ship"})],
    "policy-version-replay": [api("POST", f"{A}/policies/budget/versions/2/replay/", {"last": 10})],
    "publication-list": [api("GET", f"{A}/publications/")],
    "publication-detail": [api("GET", lambda w: f"{A}/publications/{w.publication.pk}/")],
    "publish-request-list": [api("GET", f"{A}/publish-requests/")],
    "publish-request-detail": [api("GET", lambda w: f"{A}/publish-requests/{w.publish_request.pk}/")],
    "publish-request-approve": [
        api("POST", lambda w: f"{A}/publish-requests/{w.publish_request.pk}/approve/", {"reason": "ok"})],
    "publish-request-reject": [
        api("POST", lambda w: f"{A}/publish-requests/{w.publish_request.pk}/reject/", {"reason": "no"})],
    "decision-list": [api("GET", f"{A}/decisions/")],
    "decision-detail": [api("GET", lambda w: f"{A}/decisions/{w.decision.decision_id}/")],
    "environment-list": [api("GET", f"{A}/environments/")],
    "environment-detail": [api("GET", lambda w: f"{A}/environments/{w.env}/")],
    "environment-kill-switch": [
        api("POST", lambda w: f"{A}/environments/{w.env}/kill-switch/", {"engaged": True, "reason": "x"})],
    "environment-instance-list": [
        api("GET", f"{A}/environments/edge/instances/"),
        api("POST", f"{A}/environments/edge/instances/", {"name": "opa-new", "url": "http://10.0.0.9:8181"}),
    ],
    "environment-instance-detail": [api("GET", f"{A}/environments/edge/instances/opa-a/")],
    "environment-instance-tokens": [api("POST", f"{A}/environments/edge/instances/opa-a/tokens/")],
    "environment-instance-revoke-token": [
        api("POST", lambda w: f"{A}/environments/edge/instances/opa-a/tokens/{w.credential.pk}/revoke/")],
    "environment-instance-rotate-gavel-token": [
        api("POST", f"{A}/environments/edge/instances/opa-a/rotate-gavel-token/")],
    "environment-instance-decommission": [
        api("POST", f"{A}/environments/edge/instances/opa-a/decommission/")],
    "canary-setting-list": [
        api("GET", f"{A}/canary-settings/"),
        api("POST", f"{A}/canary-settings/",
            lambda w: {"policy": "budget", "environment": w.env, "mode": "dry-run", "enforce_percentage": 5,
                       "reason": "canary"}),
    ],
    "canary-setting-detail": [api("GET", lambda w: f"{A}/canary-settings/{w.canary_setting.pk}/")],
    "exception-list": [
        api("GET", f"{A}/exceptions/"),
        api("POST", f"{A}/exceptions/", exception_api_body),
    ],
    "exception-detail": [api("GET", lambda w: f"{A}/exceptions/{w.pending_exception.pk}/")],
    "exception-approve": [api("POST", lambda w: f"{A}/exceptions/{w.pending_exception.pk}/approve/", {"comment": "ok"})],
    "exception-reject": [api("POST", lambda w: f"{A}/exceptions/{w.pending_exception.pk}/reject/", {"comment": "no"})],
    "exception-revoke": [api("POST", lambda w: f"{A}/exceptions/{w.active_exception.pk}/revoke/", {"reason": "done"})],
    "approval-list": [
        api("GET", f"{A}/approvals/"),
        api("POST", f"{A}/approvals/",
            lambda w: {"decision_id": "held-new", "path": "gavel_entry/budget/decision",
                       "input": {"user": {"id": "erin"}}, "result": HELD_RESULT}),
    ],
    "approval-detail": [api("GET", f"{A}/approvals/held-1/")],
    "approval-review": [api("POST", f"{A}/approvals/held-1/review/", {"approve": False, "comment": "no"})],
    "activity-list": [api("GET", f"{A}/activity/")],
    "export-list": [
        api("GET", f"{A}/exports/"),
        api("POST", f"{A}/exports/", {"query": "outcome=deny", "format": "jsonl"}, ok=(202,)),
    ],
    "export-detail": [api("GET", lambda w: f"{A}/exports/{w.export.pk}/")],
    "export-download": [api("GET", lambda w: f"{A}/exports/{w.export.pk}/download/")],
    "export-delete-file": [api("POST", lambda w: f"{A}/exports/{w.export.pk}/delete-file/")],
}


# --- the resolver walk ----------------------------------------------------------------------


def routed_patterns():
    """(qualified name, route, methods or None) for every pattern Django routes."""
    def walk(patterns, prefix="", namespace=""):
        for p in patterns:
            if isinstance(p, URLResolver):
                ns = namespace + (f"{p.namespace}:" if p.namespace else "")
                yield from walk(p.url_patterns, prefix + str(p.pattern), ns)
            elif isinstance(p, URLPattern):
                name = f"{namespace}{p.name}" if p.name else None
                actions = getattr(p.callback, "actions", None)  # DRF viewset routes know their methods
                yield name, prefix + str(p.pattern), set(m.upper() for m in actions) if actions else None
    return list(walk(get_resolver().url_patterns))


def test_every_routed_pattern_has_an_entry():
    missing = []
    for name, route, methods in routed_patterns():
        if name is None:
            missing.append(f"{route}: give the pattern a name, an entry in ROUTE_PERMISSIONS and in MATRIX")
            continue
        for table, known in (("ROUTE_PERMISSIONS", roles.ROUTE_PERMISSIONS), ("MATRIX", MATRIX)):
            if name not in known:
                missing.append(f"{route} ({name}): no entry in {table}")
            elif methods:
                covered = set(known[name]) if table == "ROUTE_PERMISSIONS" else {c.method for c in known[name]}
                covered |= {"HEAD"} if "GET" in covered else set()  # HEAD is GET without the body
                if methods - covered:
                    missing.append(f"{route} ({name}): no {table} entry for {sorted(methods - covered)}")
    assert not missing, "routes without a decision on who may use them:\n" + "\n".join(missing)
    routed = {name for name, _, _ in routed_patterns()}
    stale = (set(MATRIX) | set(roles.ROUTE_PERMISSIONS)) - routed
    assert not stale, f"entries for names no longer routed: {sorted(stale)}"
    for name, cases in MATRIX.items():  # every method the table decides is exercised, and only those
        assert {c.method for c in cases} == set(roles.ROUTE_PERMISSIONS[name]), name


def test_route_table_names_permissions_that_exist():
    """A typo in ROUTE_PERMISSIONS would expect nobody to get through, and the matrix would agree."""
    from django.contrib.auth.models import Permission

    special = {roles.PUBLIC, roles.SIGNED_IN, roles.OPA_TOKEN, roles.METRICS_TOKEN}
    for name, methods in roles.ROUTE_PERMISSIONS.items():
        for method, needed in methods.items():
            if needed in special:
                continue
            app_label, codename = needed.split(".")
            assert Permission.objects.filter(content_type__app_label=app_label, codename=codename).exists(), needed
            assert roles.groups_allowed(name, method), f"{name} {method}: no role holds {needed}"


def test_rollback_belongs_to_security_admins():
    assert roles.groups_allowed("policy-rollback", "POST") == {"security_admin"}
    assert roles.groups_allowed("policies:rollback", "POST") == {"security_admin"}


def test_opa_endpoints_are_a_category_of_their_own():
    """Anything under /api/v1/opa/ is OPA's, authenticated by its bearer token, not a role."""
    for name, route, _ in routed_patterns():
        opa_route = route.startswith("api/v1/opa/")
        assert all((case.kind == "opa") == opa_route for case in MATRIX[name]), name
        assert all((needed == roles.OPA_TOKEN) == opa_route for needed in roles.ROUTE_PERMISSIONS[name].values()), name


# --- the world every cell meets -------------------------------------------------------------


class World:
    def __init__(self):
        now = timezone.now()
        self.users = {role: UserFactory(role=role, username=f"matrix-{role}") for role in ROLES}
        self.tokens = {role: Token.objects.create(user=user).key for role, user in self.users.items()}
        author, requester = UserFactory(role="policy_author"), UserFactory(role="policy_author")
        other_admin = UserFactory(role="security_admin")
        policy = PolicyFactory(name="budget", author=author)
        v1 = policy.latest_version
        v2 = services.save_version(policy, author=author, source=SIMPLE_POLICY.format(name="budget") + "\n# v2\n",
                                   message="v2")
        environment = Environment.objects.default()
        for version, hours in ((v1, 2), (v2, 1)):  # v1 ran, then v2: a rollback has somewhere to go
            self.publication = Publication.objects.create(
                version=version, target_url=settings.OPA_URL, environment=environment, status=Publication.Status.OK,
                requested_by=other_admin, confirmed_at=now - timedelta(hours=hours))
            with transaction.atomic():
                services.confirm_version(self.publication, "confirmed")
        self.publish_request = review.request_publish(v2, requested_by=requester, reason="ship v2")
        self.env = environment.name
        self.canary_setting = rollout_services.change_rollout(policy, environment, canary.Rollout(), changed_by=other_admin,
                                                    reason="start")

        def exception():
            return policy_exceptions.request_exception(
                policy=policy, environment=environment, match=[{"field": "user.id", "value": "dana"}],
                justification="month end", ticket="SEC-1", expires_at=now + timedelta(days=5), requested_by=other_admin)

        self.pending_exception = exception()
        self.active_exception = policy_exceptions.approve_exception(exception(), comment="Checked the ticket", approved_by=UserFactory(
            role="security_admin"))
        # A decision old enough that the policy may be retired, recent enough for a replay.
        DecisionFactory(policy=Policy.objects.get(pk=policy.pk), path="gavel/budget/decision",
                        timestamp=now - timedelta(days=40))
        self.decision = DecisionFactory()
        self.failed_batch = LogBatch.objects.create(body_gz=gzip.compress(b"[]"), event_count=0,
                                                    status=LogBatch.Status.FAILED, failure="could not be stored")
        self.alert_rule = AlertRule.objects.create(name="Slow OPA", metric=AlertRule.Metric.P95_LATENCY, threshold=50)
        # An instance with its own token to Gavel, and Gavel's token to it under Gavel's management.
        edge = Environment.objects.create(name="edge", opa_url="http://127.0.0.1:9")
        self.instance, self.instance_token = opa_credentials.add_instance(edge, "opa-a", by=other_admin)
        self.credential = self.instance.credentials.get()
        opa_authz.bootstrap(self.instance)
        approvals.hold(decision_id="held-1", path="gavel_entry/budget/decision",
                       request={"user": {"id": "dana"}, "action": "delete"}, result=HELD_RESULT, created_from="api")
        # A finished export job, with its file under the module's GAVEL_EXPORT_DIR.
        self.export = exports.run_job(exports.start_export(self.users["auditor"], "", "csv", as_job=True).pk)


PRINCIPALS = ("anonymous",) + tuple(f"session:{r}" for r in ROLES) + tuple(f"token:{r}" for r in ROLES) + (
    "token:wrong", "opa-bearer", "metrics-bearer")
METRICS_TOKEN = "matrix-metrics-token"


def request_as(client, world, principal, case):
    client.logout()
    headers = {}
    if principal.startswith("session:"):
        client.force_login(world.users[principal.split(":")[1]])
    elif principal == "token:wrong":
        headers["HTTP_AUTHORIZATION"] = "Token " + "0" * 40
    elif principal.startswith("token:"):
        headers["HTTP_AUTHORIZATION"] = f"Token {world.tokens[principal.split(':')[1]]}"
    elif principal == "metrics-bearer":
        headers["HTTP_AUTHORIZATION"] = f"Bearer {METRICS_TOKEN}"
    elif principal == "opa-bearer":
        token = case.opa_token(world) if case.opa_token else settings.GAVEL_OPA_TOKEN
        headers["HTTP_AUTHORIZATION"] = f"Bearer {token}"
    url = case.url(world) if callable(case.url) else case.url
    data = case.data(world) if callable(case.data) else case.data
    if case.method == "GET":
        return client.get(url, **headers)
    if case.kind == "opa":
        return client.post(url, data=data, content_type="application/json", **headers)
    if case.kind == "api":
        return client.post(url, data=json.dumps(data or {}), content_type="application/json", **headers)
    return client.post(url, data or {}, **headers)


def expectation(name, case, principal) -> str:
    """'ok', 'login' (302 to the login page), '401' or '403', read from console/roles.py."""
    role = principal.split(":", 1)[1] if ":" in principal else None
    allowed = roles.groups_allowed(name, case.method)
    if case.kind == "opa":
        return "ok" if principal == "opa-bearer" else "401"
    if case.kind == "metrics":
        return "ok" if principal == "metrics-bearer" else "401"
    if case.kind == "public":
        return "ok"
    if case.kind == "page":
        if principal.startswith("session:"):
            return "ok" if role in allowed else "403"
        return "login"  # no login, and API tokens or OPA's token do not log anyone in to pages
    if principal in ("anonymous", "token:wrong", "opa-bearer", "metrics-bearer"):
        return "401"
    return "ok" if role in allowed else "403"


def cells():
    for name, cases in MATRIX.items():
        for index, case in enumerate(cases):
            yield pytest.param(name, index, id=f"{name}-{case.method}" + (f"-{index}" if index else ""))


@pytest.fixture(scope="module")
def matrix_opa(tmp_path_factory):
    """An OPA for the actions that reach it (retire, replay). Not the shared `opa` fixture: that
    one needs live_server, which makes tests transactional, and each cell must be rolled back."""
    port = stack.free_port()
    proc = stack.start_opa(tmp_path_factory.mktemp("matrix-opa"), port, "http://127.0.0.1:9/api/v1/opa",
                           settings.GAVEL_OPA_TOKEN, {"environment": "test", "instance": "matrix"})
    yield f"http://127.0.0.1:{port}"
    stack.stop_process(proc, "role-matrix OPA")


@pytest.fixture(scope="module")
def matrix_settings(matrix_opa, tmp_path_factory):
    return {"OPA_URL": matrix_opa, "GAVEL_EXPORT_DIR": tmp_path_factory.mktemp("matrix-exports"),
            "GAVEL_METRICS_TOKEN": METRICS_TOKEN,
            "PASSWORD_HASHERS": ["django.contrib.auth.hashers.MD5PasswordHasher"]}  # thirteen users


@pytest.fixture(scope="module")
def world(django_db_setup, django_db_blocker, matrix_settings):
    """Built once for the module inside a transaction rolled back at its end. Each cell's own
    transaction nests in it as a savepoint, so every cell still meets this same world."""
    with django_db_blocker.unblock(), override_settings(**matrix_settings), transaction.atomic():
        built = World()
        built.export_file = exports.export_path(built.export)
        built.export_bytes = built.export_file.read_bytes()
        yield built
        transaction.set_rollback(True)


@pytest.mark.parametrize("name, index", list(cells()))
def test_role_matrix(client, world, matrix_settings, settings, name, index):
    for key, value in matrix_settings.items():
        setattr(settings, key, value)
    if not world.export_file.exists():  # an earlier cell deleted the export's file early
        world.export_file.write_bytes(world.export_bytes)
    case = MATRIX[name][index]
    principals = PRINCIPALS if case.kind in ("api", "opa", "metrics") else tuple(
        p for p in PRINCIPALS if p not in ("token:wrong", "metrics-bearer"))
    wrong = []
    for principal in principals:
        with transaction.atomic():  # rolled back below: every principal meets the same world
            response = request_as(client, world, principal, case)
            expected = expectation(name, case, principal)
            got = response.status_code
            login_redirect = got == 302 and response.url.startswith("/login/")
            if expected == "ok":
                errors = [m.message for m in get_messages(response.wsgi_request) if m.level == ERROR]
                good = (got in case.expected_ok() and (case.kind == "public" or not login_redirect)
                        and not errors)
                detail = f"{got} {errors or getattr(response, 'content', b'')[:300]!r}"
            elif expected == "login":
                good, detail = login_redirect, f"{got} {response.get('Location')}"
            else:
                good, detail = got == int(expected), f"{got} {response.content[:200]!r}"
            if not good:
                wrong.append(f"{principal}: expected {expected}, got {detail}")
            transaction.set_rollback(True)
    assert not wrong, f"{case.method} {name}:\n" + "\n".join(wrong)
