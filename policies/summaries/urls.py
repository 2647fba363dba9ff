"""Plain-language summary pages of one version. Included under
`policies/<slug:name>/v<int:number>/summary/`; no app_name, so the names live in whatever
namespace includes them (the views reverse within their own namespace)."""
from django.urls import path

from policies.summaries import views as summary_views

urlpatterns = [
    path("", summary_views.summary_page, name="version_summary"),
    path("print/", summary_views.summary_print, name="version_summary_print"),
    path("diff/<int:other>/", summary_views.summary_diff, name="version_summary_diff"),
]
