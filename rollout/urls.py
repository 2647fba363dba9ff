from django.urls import path

from . import views as rollout_views

app_name = "rollout"
urlpatterns = [
    path("", rollout_views.overview, name="overview"),
    path("<slug:environment>/kill-switch/", rollout_views.kill_switch, name="kill_switch"),
    path("<slug:environment>/<slug:name>/", rollout_views.policy_rollout, name="policy"),
    path("<slug:environment>/<slug:name>/preview/", rollout_views.preview, name="preview"),
]
