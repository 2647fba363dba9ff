from django.urls import include, path

from . import views

app_name = "policies"
urlpatterns = [
    path("", views.policy_list, name="list"),
    path("new/", views.policy_create, name="create"),
    path("<slug:name>/", views.policy_detail, name="detail"),
    path("<slug:name>/versions/new/", views.version_create, name="version_create"),
    path("<slug:name>/v<int:number>/", views.version_detail, name="version"),
    path("<slug:name>/v<int:number>/publications/", views.version_publications, name="version_publications"),
    path("<slug:name>/v<int:number>/publish/", views.version_publish, name="version_publish"),
    path("<slug:name>/v<int:number>/summary/", include("policies.summary_urls")),
]
