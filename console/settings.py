"""Gavel settings. Everything that differs between machines comes from the environment.

DATABASE_URL, REDIS_URL, OPA_URL, GAVEL_OPA_TOKEN, SECRET_KEY and DEBUG are read here;
`scripts/stack.py` fills them in for the embedded development and test stack.
"""
import importlib.util
import os
from pathlib import Path

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent


def env_bool(name: str, default: bool) -> bool:
    value = os.environ.get(name)
    if value is None:
        return default
    return value.strip().lower() in {"1", "true", "yes", "on"}


DEBUG = env_bool("DEBUG", False)


def required_secret(name: str, dev_default: str) -> str:
    """Secrets have a default only in DEBUG, so a production deploy cannot run on one."""
    value = os.environ.get(name)
    if value:
        return value
    if DEBUG:
        return dev_default
    raise ImproperlyConfigured(f"{name} must be set when DEBUG is off")


SECRET_KEY = required_secret("SECRET_KEY", "django-insecure-gavel-development-only")
# The bearer token OPA presents when it ships decision logs, and that Gavel sends to OPA.
GAVEL_OPA_TOKEN = required_secret("GAVEL_OPA_TOKEN", "gavel-development-token")

ALLOWED_HOSTS = [h for h in os.environ.get("ALLOWED_HOSTS", "127.0.0.1,localhost").split(",") if h]
CSRF_TRUSTED_ORIGINS = [o for o in os.environ.get("CSRF_TRUSTED_ORIGINS", "").split(",") if o]

INSTALLED_APPS = [
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django.contrib.postgres",
    "rest_framework",
    "rest_framework.authtoken",
    "django_filters",
    "drf_spectacular",
    "django_htmx",
    "policies",
    "audit",
    "console",  # last: its post_migrate hook needs the other apps' permissions to exist
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
    "console.middleware.LoginRequiredMiddleware",
]

ROOT_URLCONF = "console.urls"
WSGI_APPLICATION = "console.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "console.context_processors.navigation",
            ],
        },
    },
]

# The default is the Postgres that `make run` starts (scripts/stack.py, dev profile).
DATABASE_URL = os.environ.get("DATABASE_URL", "postgres://gavel@127.0.0.1:54329/gavel")
DATABASES = {"default": dj_database_url.parse(DATABASE_URL, conn_max_age=60, conn_health_checks=True)}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

REDIS_URL = os.environ.get("REDIS_URL", "redis://127.0.0.1:63799/0")
CELERY_BROKER_URL = REDIS_URL
CELERY_TASK_ACKS_LATE = True  # a worker that dies mid-task leaves the task for another
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_IGNORE_RESULT = True
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_BROKER_TRANSPORT_OPTIONS = {"visibility_timeout": 600}
CELERY_BEAT_SCHEDULE = {
    "expire-and-escalate-held-actions": {
        "task": "audit.tasks.sweep_held_actions",
        "schedule": 30.0,
    },
    # Re-pushes each environment's runtime config: drops expired exceptions, repairs drift.
    "push-runtime-config": {
        "task": "policies.tasks.push_all_runtime_configs",
        "schedule": 60.0,
    },
    "requeue-stalled-log-batches": {
        "task": "audit.tasks.requeue_stalled_batches",
        "schedule": 30.0,
    },
}

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
]
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "home"
LOGOUT_REDIRECT_URL = "login"

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = False
USE_TZ = True

STATIC_URL = "static/"
STATICFILES_DIRS = [
    BASE_DIR / "static",
    # plotly.js as the plotly package ships it, served from our own origin (no CDN).
    ("vendor/plotly", Path(importlib.util.find_spec("plotly").origin).parent / "package_data"),
]
STATIC_ROOT = BASE_DIR / "staticfiles"

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "rest_framework.authentication.SessionAuthentication",
        "rest_framework.authentication.TokenAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["console.permissions.RoleModelPermissions"],
    "DEFAULT_FILTER_BACKENDS": ["django_filters.rest_framework.DjangoFilterBackend"],
    "DEFAULT_PAGINATION_CLASS": "rest_framework.pagination.PageNumberPagination",
    "PAGE_SIZE": 50,
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
}
SPECTACULAR_SETTINGS = {
    "TITLE": "Gavel API",
    "DESCRIPTION": "Policies, versions, publishing and the decision audit trail.",
    "VERSION": "1",
    "SERVE_INCLUDE_SCHEMA": False,
}

# --- OPA -------------------------------------------------------------------------------
OPA_URL = os.environ.get("OPA_URL", "http://127.0.0.1:8181").rstrip("/")
# The environment (dev, staging, prod) the OPA at OPA_URL serves.
GAVEL_ENVIRONMENT = os.environ.get("GAVEL_ENVIRONMENT", "dev")
OPA_TIMEOUT_SECONDS = float(os.environ.get("OPA_TIMEOUT_SECONDS", "5"))
# The `opa` binary compiles versions before they are saved (`opa check`).
OPA_BINARY = os.environ.get("OPA_BINARY", "opa")
# Publishing retries while OPA is unreachable: exponential backoff from this base.
GAVEL_PUBLISH_RETRY_BACKOFF = int(os.environ.get("GAVEL_PUBLISH_RETRY_BACKOFF", "5"))
GAVEL_PUBLISH_MAX_RETRIES = int(os.environ.get("GAVEL_PUBLISH_MAX_RETRIES", "10"))
# A policy may be retired only after this many days without a decision.
GAVEL_RETIRE_AFTER_DAYS = int(os.environ.get("GAVEL_RETIRE_AFTER_DAYS", "30"))
# Impact analysis: how many recorded decisions a replay takes by default, at most, and per
# round trip to OPA (one POST /v1/query evaluates a whole chunk).
GAVEL_REPLAY_DEFAULT_LAST = int(os.environ.get("GAVEL_REPLAY_DEFAULT_LAST", "1000"))
GAVEL_REPLAY_MAX_DECISIONS = int(os.environ.get("GAVEL_REPLAY_MAX_DECISIONS", "100000"))
GAVEL_REPLAY_CHUNK = int(os.environ.get("GAVEL_REPLAY_CHUNK", "1000"))
GAVEL_REPLAY_TIMEOUT_SECONDS = float(os.environ.get("GAVEL_REPLAY_TIMEOUT_SECONDS", "60"))

# --- Decision-log ingest -----------------------------------------------------------------
# Compressed body limit, and the limit after gunzip (guards against gzip bombs).
GAVEL_LOG_BATCH_MAX_BYTES = int(os.environ.get("GAVEL_LOG_BATCH_MAX_BYTES", str(8 * 1024 * 1024)))
GAVEL_LOG_BATCH_MAX_INFLATED_BYTES = int(
    os.environ.get("GAVEL_LOG_BATCH_MAX_INFLATED_BYTES", str(64 * 1024 * 1024))
)
DATA_UPLOAD_MAX_MEMORY_SIZE = GAVEL_LOG_BATCH_MAX_BYTES + 1024
# Backpressure: over this many batches waiting to be stored, uploads get 429 + Retry-After.
GAVEL_INGEST_MAX_QUEUED_BATCHES = int(os.environ.get("GAVEL_INGEST_MAX_QUEUED_BATCHES", "500"))
GAVEL_INGEST_RETRY_AFTER_SECONDS = int(os.environ.get("GAVEL_INGEST_RETRY_AFTER_SECONDS", "5"))

# --- Approvals ---------------------------------------------------------------------------
GAVEL_APPROVAL_TIMEOUT_MINUTES = int(os.environ.get("GAVEL_APPROVAL_TIMEOUT_MINUTES", "60"))
GAVEL_APPROVAL_VALIDITY_MINUTES = int(os.environ.get("GAVEL_APPROVAL_VALIDITY_MINUTES", "15"))
GAVEL_APPROVAL_WEBHOOK_URL = os.environ.get("GAVEL_APPROVAL_WEBHOOK_URL", "")
GAVEL_APPROVAL_MAX_WAIT_SECONDS = 60  # the longest a GET /api/v1/approvals/{id}?wait= may hold a request

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": os.environ.get("LOG_LEVEL", "INFO")},
    "loggers": {"django.server": {"level": "WARNING"}},
}

if not DEBUG:
    SESSION_COOKIE_SECURE = env_bool("SESSION_COOKIE_SECURE", True)
    CSRF_COOKIE_SECURE = env_bool("CSRF_COOKIE_SECURE", True)
SESSION_COOKIE_HTTPONLY = True
X_FRAME_OPTIONS = "DENY"
SECURE_CONTENT_TYPE_NOSNIFF = True
