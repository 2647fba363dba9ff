from django.urls import path

from . import views

app_name = "alerts"
urlpatterns = [
    path("", views.alert_list, name="list"),
    path("rules/new/", views.rule_create, name="rule-new"),
    path("rules/<int:pk>/", views.rule_edit, name="rule-edit"),
]
