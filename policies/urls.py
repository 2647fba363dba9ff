from django.urls import include, path

from . import review_views, views
from .authoring import views as authoring_views
from .evidence import views as evidence_views

app_name = "policies"
urlpatterns = [
    path("", views.policy_list, name="list"),
    path("new/", views.policy_create, name="create"),
    path("draft/check/", authoring_views.draft_check, name="draft_check"),
    path("<slug:name>/", views.policy_detail, name="detail"),
    path("<slug:name>/rollback/", review_views.rollback, name="rollback"),
    path("<slug:name>/retire/", review_views.retire, name="retire"),
    path("<slug:name>/versions/new/", views.version_create, name="version_create"),
    path("<slug:name>/playground/", authoring_views.playground_page, name="playground"),
    path("<slug:name>/v<int:number>/", views.version_detail, name="version"),
    path("<slug:name>/v<int:number>/diff/", review_views.diff, name="version_diff"),
    path("<slug:name>/v<int:number>/publications/", views.version_publications, name="version_publications"),
    path("<slug:name>/v<int:number>/publish/", review_views.request_publish, name="version_publish"),
    path("<slug:name>/v<int:number>/requests/<int:request_id>/approve/", review_views.approve,
         name="request_approve"),
    path("<slug:name>/v<int:number>/requests/<int:request_id>/reject/", review_views.reject, name="request_reject"),
    path("<slug:name>/v<int:number>/replay/", review_views.replay_impact, name="version_replay"),
    path("<slug:name>/v<int:number>/summary/", include("policies.summaries.urls")),
    path("<slug:name>/v<int:number>/evidence/", evidence_views.version_evidence, name="version_evidence"),
    path("<slug:name>/v<int:number>/evidence.pdf", evidence_views.version_evidence_pdf, name="version_evidence_pdf"),
    path("<slug:name>/v<int:number>/evidence/from-v<int:other>/", evidence_views.diff_evidence,
         name="version_diff_evidence"),
    path("<slug:name>/v<int:number>/evidence/from-v<int:other>.pdf", evidence_views.diff_evidence_pdf,
         name="version_diff_evidence_pdf"),
]
