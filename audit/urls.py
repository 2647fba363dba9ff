from django.urls import path

from . import views

app_name = "audit"
urlpatterns = [
    path("", views.decision_list, name="list"),
    path("dashboard/", views.dashboard, name="dashboard"),
    path("ingest/", views.ingest_status, name="ingest"),
    path("<str:decision_id>/", views.decision_detail, name="detail"),
    path("<str:decision_id>/explain/", views.decision_explain, name="explain"),
]
