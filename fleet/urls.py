from django.urls import path

from . import views as fleet_views

app_name = "fleet"
urlpatterns = [
    path("", fleet_views.environments, name="environments"),
    path("<slug:environment>/instances/", fleet_views.add_instance, name="add_instance"),
    path("<slug:environment>/instances/<slug:instance>/tokens/", fleet_views.issue_token, name="issue_token"),
    path("<slug:environment>/instances/<slug:instance>/tokens/<int:credential>/revoke/", fleet_views.revoke_token,
         name="revoke_token"),
    path("<slug:environment>/instances/<slug:instance>/gavel-token/rotate/", fleet_views.rotate_gavel_token,
         name="rotate_gavel_token"),
    path("<slug:environment>/instances/<slug:instance>/decommission/", fleet_views.decommission_instance,
         name="decommission_instance"),
]
