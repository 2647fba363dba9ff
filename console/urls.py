from django.contrib.auth import views as auth_views
from csp.constants import NONCE
from csp.decorators import csp_update
from django.urls import include, path, re_path
from drf_spectacular.views import SpectacularAPIView, SpectacularRedocView, SpectacularSwaggerSplitView
from rest_framework.routers import DefaultRouter

from activity.api import ActivityViewSet
from approvals.api import HeldActionViewSet
from audit.api import DecisionViewSet, opa_decision_logs
from checks import api as checks_api
from exports.api import ExportRecordViewSet
from fleet.api import EnvironmentViewSet, OpaInstanceViewSet
from fleet.service_api import opa_authz_bundle, opa_bundle, opa_status
from policies.api import PolicyVersionViewSet, PolicyViewSet, PublicationViewSet, PublishRequestViewSet
from rollout.api import CanarySettingViewSet, PolicyExceptionViewSet

from . import metrics, user_views, views

class GavelRouter(DefaultRouter):
    """The API root lists the documentation and the schema beside the resources."""

    def get_api_root_view(self, api_urls=None):
        view = super().get_api_root_view(api_urls)
        view.initkwargs["api_root_dict"].update({"docs (Swagger UI)": "api-docs", "docs (Redoc)": "api-redoc",
                                                 "schema (OpenAPI)": "api-schema"})
        return view


# Redoc's page alone relaxes the CSP, and only as far as Redoc needs (static/gavel/redoc-init.js): its
# styled-components <style> elements carry this response's nonce, the scrollbar CSS it adds while loading
# is allowed by its hash (a sidecar upgrade that changes it shows up in tests/console/test_api_docs_browser.py),
# and its search runs in a worker made from a blob: URL.
REDOC_SCROLLBAR_CSS = "'sha256-QMIg+bpjm3JdElJ388KYke01izlUW0UoNOeKjpMxdgc='"
redoc = csp_update({"style-src-elem": [NONCE, REDOC_SCROLLBAR_CSS], "worker-src": ["'self'", "blob:"]})(
    SpectacularRedocView.as_view(url_name="api-schema"))

router = GavelRouter()
router.trailing_slash = "/?"  # machines may leave the slash off (POST /api/v1/approvals)
router.register("policies", PolicyViewSet, basename="policy")
router.register(r"policies/(?P<policy_name>[-\w]+)/versions", PolicyVersionViewSet, basename="policy-version")
router.register("publications", PublicationViewSet, basename="publication")
router.register("publish-requests", PublishRequestViewSet, basename="publish-request")
router.register("decisions", DecisionViewSet, basename="decision")
router.register("environments", EnvironmentViewSet, basename="environment")
router.register(r"environments/(?P<environment_name>[-\w]+)/instances", OpaInstanceViewSet,
                basename="environment-instance")
router.register("canary-settings", CanarySettingViewSet, basename="canary-setting")
router.register("exceptions", PolicyExceptionViewSet, basename="exception")
router.register("approvals", HeldActionViewSet, basename="approval")
router.register("activity", ActivityViewSet, basename="activity")
router.register("exports", ExportRecordViewSet, basename="export")

urlpatterns = [
    path("", views.home, name="home"),
    path("login/", auth_views.LoginView.as_view(), name="login"),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("policies/", include("policies.urls")),
    path("rollout/", include("rollout.urls")),
    path("environments/", include("fleet.urls")),
    path("exceptions/", include("rollout.exception_urls")),
    path("audit/alerts/", include("alerts.urls")),
    path("audit/exports/", include("exports.urls")),
    path("audit/", include("audit.urls")),
    path("approvals/", include("approvals.urls")),
    path("activity/", include("activity.urls")),
    path("users/", include((user_views.urlpatterns, "users"))),
    path("api/v1/opa/logs", opa_decision_logs, name="opa-logs"),
    path("api/v1/opa/bundles/<slug:environment>", opa_bundle, name="opa-bundle"),
    path("api/v1/opa/status", opa_status, name="opa-status"),
    path("api/v1/opa/authz", opa_authz_bundle, name="opa-authz"),
    path("api/v1/checks/", checks_api.check, name="ci-check"),
    path("api/v1/checks/verify/", checks_api.verify, name="ci-verify"),
    path("api/v1/checks/replay/", checks_api.replay, name="ci-replay"),
    path("api/v1/checks/policies/<slug:environment>.tar.gz", checks_api.policies_tarball, name="ci-policies"),
    # The OCI distribution API's read side, for `conftest pull oci://<host>/policies/<environment>`.
    path("v2/", checks_api.RegistryBase.as_view(), name="oci-base"),
    re_path(r"^v2/policies/(?P<environment>[a-z0-9]+(?:[._-][a-z0-9]+)*)/manifests/(?P<reference>[\w.:-]{1,135})$",
            checks_api.RegistryManifest.as_view(), name="oci-manifest"),
    re_path(r"^v2/policies/(?P<environment>[a-z0-9]+(?:[._-][a-z0-9]+)*)/blobs/(?P<digest>sha256:[0-9a-f]{64})$",
            checks_api.RegistryBlob.as_view(), name="oci-blob"),
    path("metrics", metrics.metrics, name="metrics"),
    path("api/v1/schema/", SpectacularAPIView.as_view(), name="api-schema"),
    path("api/v1/docs/", SpectacularSwaggerSplitView.as_view(url_name="api-schema"), name="api-docs"),
    path("api/v1/redoc/", redoc, name="api-redoc"),
    path("api/v1/", include(router.urls)),
]
