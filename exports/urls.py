from django.urls import path

from . import views

app_name = "exports"
urlpatterns = [
    path("", views.export_list, name="list"),
    path("new/", views.export_new, name="new"),
    path("verify_gavel_export.py", views.export_verifier, name="verifier"),
    path("public-key.txt", views.export_public_key, name="public_key"),
    path("<int:pk>/", views.export_detail, name="detail"),
    path("<int:pk>/download/", views.export_download, name="download"),
    path("<int:pk>/delete-file/", views.export_delete_file, name="delete_file"),
    path("<int:pk>/manifest.json", views.export_manifest, name="manifest"),
]
