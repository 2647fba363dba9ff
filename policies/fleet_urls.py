from django.urls import path

from . import fleet_views

app_name = "fleet"
urlpatterns = [
    path("", fleet_views.environments, name="environments"),
]
