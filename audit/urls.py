from django.urls import path

import core.display.decision_ids  # noqa: F401  (registers the decision_id converter)

from . import views

app_name = "audit"
urlpatterns = [
    path("", views.decision_list, name="list"),
    path("dashboard/", views.dashboard, name="dashboard"),
    path("ingest/", views.ingest_status, name="ingest"),
    path("ingest/failed/<int:pk>/download/", views.failed_batch_download, name="failed-download"),
    path("ingest/failed/<int:pk>/retry/", views.failed_batch_retry, name="failed-retry"),
    path("<decision_id:decision_id>/", views.decision_detail, name="detail"),
    path("<decision_id:decision_id>/explain/", views.decision_explain, name="explain"),
]
