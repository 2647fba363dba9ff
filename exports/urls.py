from django.urls import path

from . import views

app_name = "exports"
urlpatterns = [
    path("", views.export_list, name="list"),
    path("new/", views.export_new, name="new"),
    path("<int:pk>/", views.export_detail, name="detail"),
    path("<int:pk>/download/", views.export_download, name="download"),
    path("<int:pk>/delete-file/", views.export_delete_file, name="delete_file"),
    path("<int:pk>/manifest.json", views.export_manifest, name="manifest"),
]
