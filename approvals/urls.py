from django.urls import path

import core.display.decision_ids  # noqa: F401  (registers the decision_id converter)

from . import views as approval_views

app_name = "approvals"
urlpatterns = [
    path("", approval_views.queue, name="queue"),
    path("review/", approval_views.bulk_review, name="bulk_review"),
    path("saved/", approval_views.save_search, name="save_search"),
    path("saved/<int:pk>/delete/", approval_views.delete_search, name="delete_search"),
    path("export.csv", approval_views.export_csv, name="export"),
    path("<decision_id:decision_id>/", approval_views.detail, name="detail"),
    path("<decision_id:decision_id>/state/", approval_views.state, name="state"),
    path("<decision_id:decision_id>/review/", approval_views.review, name="review"),
]
