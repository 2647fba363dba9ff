from django.urls import path

from . import exception_views

app_name = "exceptions"
urlpatterns = [
    path("", exception_views.exception_list, name="list"),
    path("new/", exception_views.exception_create, name="create"),
    path("<int:pk>/", exception_views.exception_detail, name="detail"),
    path("<int:pk>/approve/", exception_views.exception_decide, {"action": "approve"}, name="approve"),
    path("<int:pk>/reject/", exception_views.exception_decide, {"action": "reject"}, name="reject"),
    path("<int:pk>/revoke/", exception_views.exception_decide, {"action": "revoke"}, name="revoke"),
]
