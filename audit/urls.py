from django.urls import path

from . import alert_views, export_views, views

app_name = "audit"
urlpatterns = [
    path("", views.decision_list, name="list"),
    path("dashboard/", views.dashboard, name="dashboard"),
    path("ingest/", views.ingest_status, name="ingest"),
    path("alerts/", alert_views.alert_list, name="alerts"),
    path("alerts/rules/new/", alert_views.rule_create, name="alert-rule-new"),
    path("alerts/rules/<int:pk>/", alert_views.rule_edit, name="alert-rule-edit"),
    path("exports/", export_views.export_list, name="exports"),
    path("exports/new/", export_views.export_new, name="export_new"),
    path("exports/<int:pk>/", export_views.export_detail, name="export_detail"),
    path("exports/<int:pk>/download/", export_views.export_download, name="export_download"),
    path("exports/<int:pk>/delete-file/", export_views.export_delete_file, name="export_delete_file"),
    path("exports/<int:pk>/manifest.json", export_views.export_manifest, name="export_manifest"),
    path("<str:decision_id>/", views.decision_detail, name="detail"),
    path("<str:decision_id>/explain/", views.decision_explain, name="explain"),
]
