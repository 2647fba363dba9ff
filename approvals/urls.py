from django.urls import path

from . import views as approval_views

app_name = "approvals"
urlpatterns = [
    path("", approval_views.queue, name="queue"),
    path("export.csv", approval_views.export_csv, name="export"),
    path("<str:decision_id>/", approval_views.detail, name="detail"),
    path("<str:decision_id>/review/", approval_views.review, name="review"),
]
