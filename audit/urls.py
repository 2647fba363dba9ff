from django.urls import path

from . import alert_views, views

app_name = "audit"
urlpatterns = [
    path("", views.decision_list, name="list"),
    path("dashboard/", views.dashboard, name="dashboard"),
    path("ingest/", views.ingest_status, name="ingest"),
    path("alerts/", alert_views.alert_list, name="alerts"),
    path("alerts/rules/new/", alert_views.rule_create, name="alert-rule-new"),
    path("alerts/rules/<int:pk>/", alert_views.rule_edit, name="alert-rule-edit"),
    path("<str:decision_id>/", views.decision_detail, name="detail"),
    path("<str:decision_id>/explain/", views.decision_explain, name="explain"),
]
