"""Requests answer to console/roles.py's ROUTE_PERMISSIONS itself (console/access.py), not to a
copy of it in each view: change the table and the route changes with it; leave a route or a
method out and it is refused."""
import ast
from pathlib import Path

import pytest
from django.conf import settings

from console import access, roles

pytestmark = pytest.mark.django_db
ROOT = Path(__file__).resolve().parents[2]


def test_a_page_follows_the_table_not_its_view(client, make_user, monkeypatch):
    client.force_login(make_user("auditor"))
    assert client.get("/audit/").status_code == 200
    monkeypatch.setitem(roles.ROUTE_PERMISSIONS, "audit:list", {"GET": "policies.add_policy"})
    assert client.get("/audit/").status_code == 403


def test_an_api_route_follows_the_table(client, make_user, monkeypatch):
    client.force_login(make_user("compliance_officer"))
    assert client.get("/api/v1/decisions/").status_code == 403
    monkeypatch.setitem(roles.ROUTE_PERMISSIONS, "decision-list", {"GET": roles.SIGNED_IN})
    assert client.get("/api/v1/decisions/").status_code == 200


def test_a_route_missing_from_the_table_is_refused_to_everyone(client, make_user, monkeypatch):
    client.force_login(make_user("security_admin"))
    monkeypatch.delitem(roles.ROUTE_PERMISSIONS, "audit:list")
    monkeypatch.delitem(roles.ROUTE_PERMISSIONS, "decision-list")
    assert client.get("/audit/").status_code == 403
    assert client.get("/api/v1/decisions/").status_code == 403


def test_a_method_the_table_does_not_name_is_not_allowed(client, make_user):
    client.force_login(make_user("auditor"))
    response = client.post("/audit/")
    assert response.status_code == 405 and response["Allow"] == "GET"
    assert not access.allows(make_user("security_admin"), "audit:list", "DELETE")


def test_head_and_options_read_like_get(make_user):
    auditor = make_user("auditor")
    assert access.allows(auditor, "audit:list", "HEAD") and access.allows(auditor, "decision-list", "OPTIONS")


def test_no_api_view_sets_its_own_permission_classes():
    """A view's own permission_classes would replace the table-driven default, silently."""
    assert settings.REST_FRAMEWORK["DEFAULT_PERMISSION_CLASSES"] == ["console.access.RoutePermission"]
    offenders = []
    app_code = [path for app in ROOT.glob("*/apps.py") for path in app.parent.rglob("*.py")]
    assert len(app_code) > 50  # the scan finds the apps
    for path in app_code:
        for node in ast.walk(ast.parse(path.read_text())):
            named = ({kw.arg for kw in node.keywords} | {getattr(node.func, "id", "")}  # @permission_classes(...)
                     if isinstance(node, ast.Call) else set())
            assigned = ({t.id for t in node.targets if isinstance(t, ast.Name)} if isinstance(node, ast.Assign)
                        else {node.name} if isinstance(node, ast.FunctionDef) else set())
            if {"permission_classes", "get_permissions"} & (named | assigned):
                offenders.append(f"{path.relative_to(ROOT)}:{node.lineno}")
    assert not offenders, offenders
