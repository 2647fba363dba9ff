"""The Celery app: broker is Redis (REDIS_URL), tasks are found in each app's tasks.py."""
import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "console.settings")

app = Celery("gavel")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
