"""Every page needs a login, and who may use a route is read from one table, console/roles.py's
ROUTE_PERMISSIONS, on every request: pages through the middleware below, the API through DRF's
default permission class. A route or method missing from the table is refused, so nothing new
ships open by accident."""
from __future__ import annotations

import logging

from django.contrib.auth.middleware import LoginRequiredMiddleware as DjangoLoginRequired
from django.contrib.auth.views import redirect_to_login
from django.core.exceptions import PermissionDenied
from django.http import HttpResponseNotAllowed
from rest_framework.permissions import BasePermission

from .roles import METRICS_TOKEN, OPA_TOKEN, PUBLIC, ROUTE_PERMISSIONS, SIGNED_IN

log = logging.getLogger(__name__)


class Unlisted(LookupError):
    """The route, or this method on it, has no entry in ROUTE_PERMISSIONS."""


def needed(route: str | None, method: str) -> str:
    """The permission (or PUBLIC, SIGNED_IN, OPA_TOKEN) a method on a route needs."""
    methods = ROUTE_PERMISSIONS.get(route or "")
    if methods is None:
        raise Unlisted(f"route {route!r} has no entry in ROUTE_PERMISSIONS")
    method = "GET" if method in ("HEAD", "OPTIONS") else method
    if method not in methods:
        raise Unlisted(f"{method} on {route!r} has no entry in ROUTE_PERMISSIONS")
    return methods[method]


def allows(user, route: str | None, method: str) -> bool:
    """OPA's routes and /metrics pass here: their views check their own bearer tokens."""
    try:
        permission = needed(route, method)
    except Unlisted as unlisted:
        log.error("refused: %s", unlisted)
        return False
    if permission in (PUBLIC, OPA_TOKEN, METRICS_TOKEN):
        return True
    if not user.is_authenticated:
        return False
    return permission == SIGNED_IN or user.has_perm(permission)


def route_of(request) -> str | None:
    match = getattr(request, "resolver_match", None)
    return match.view_name if match else None


class RoutePermission(BasePermission):
    """The API's only permission class (REST_FRAMEWORK's default): the table decides."""

    def has_permission(self, request, view):
        return allows(request.user, route_of(request), request.method)


class LoginRequiredMiddleware(DjangoLoginRequired):
    """Every page needs a login. The API authenticates itself (session or token) inside DRF,
    so it answers 401/403 in JSON instead of redirecting machines to a login form; so does the
    registry API under /v2/ (`conftest pull oci://...`, checks/registry.py)."""

    def process_view(self, request, view_func, view_args, view_kwargs):
        if request.path.startswith(("/api/", "/v2/")):
            return None
        return super().process_view(request, view_func, view_args, view_kwargs)


class RoutePermissionMiddleware:
    """The pages' side: runs after login and before the view. API views are left to DRF,
    which authenticates tokens first and then asks RoutePermission."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        return self.get_response(request)

    def process_view(self, request, view_func, view_args, view_kwargs):
        if _is_api_view(view_func):
            return None
        route = route_of(request)
        if route in ROUTE_PERMISSIONS and request.method not in ("HEAD", "OPTIONS"):
            if request.method not in ROUTE_PERMISSIONS[route]:
                return HttpResponseNotAllowed(sorted(ROUTE_PERMISSIONS[route]))
        if allows(request.user, route, request.method):
            return None
        if not request.user.is_authenticated:
            return redirect_to_login(request.get_full_path())
        raise PermissionDenied


def _is_api_view(view_func) -> bool:
    # DRF's as_view() marks its views with `cls` (Django's own use `view_class`). Importing APIView
    # here to check would loop: DRF imports this module while reading its settings.
    return hasattr(view_func, "cls") and hasattr(view_func.cls, "permission_classes")
