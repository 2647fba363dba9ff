"""Gavel settings. Everything that differs between machines comes from the environment.

DATABASE_URL, REDIS_URL, OPA_URL, GAVEL_OPA_TOKEN, SECRET_KEY and DEBUG are read here;
`scripts/stack.py` fills them in for the embedded development and test stack.
"""
import base64
import hashlib
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
# The bootstrap bearer token: OPA may present it when it ships decision logs, and Gavel sends it
# to OPAs that have no token of their own. Production issues per-instance tokens instead
# (fleet/credentials.py, fleet/opa_authz.py).
GAVEL_OPA_TOKEN = required_secret("GAVEL_OPA_TOKEN", "gavel-development-token")
# Once every OPA has a token of its own, the bootstrap token stops being accepted from OPA (401):
# the default in production. DEBUG and the local stacks (scripts/stack.py: make test, the benches),
# whose OPAs still ship with it, keep it.
GAVEL_OPA_BOOTSTRAP_TOKEN_OFF = env_bool("GAVEL_OPA_BOOTSTRAP_TOKEN_OFF",
                                         not DEBUG and "GAVEL_STACK_HOME" not in os.environ)

ALLOWED_HOSTS = [h for h in os.environ.get("ALLOWED_HOSTS", "127.0.0.1,localhost").split(",") if h]
CSRF_TRUSTED_ORIGINS = [o for o in os.environ.get("CSRF_TRUSTED_ORIGINS", "").split(",") if o]

INSTALLED_APPS = [
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django.contrib.humanize",
    "django.contrib.postgres",
    "rest_framework",
    "rest_framework.authtoken",
    "django_filters",
    "drf_spectacular",
    "drf_spectacular_sidecar",  # Swagger UI and Redoc served from our own origin
    "django_htmx",
    "axes",  # login throttling (see the security section at the end)
    "pgtrigger",
    "pghistory",
    # The decision core, then one app per feature (README "Layout").
    "core",
    "policies",
    "fleet",
    "rollout",
    "audit",
    "approvals",
    "exports",
    "alerts",
    "checks",  # CI checks: `gavel check`, verify, replay, the conftest tarball
    "activity",  # the append-only log of every change (activity/models.py lists what it follows)
    "console",  # last: its post_migrate hook needs the other apps' permissions to exist
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "csp.middleware.CSPMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    # Tags each change with the user and URL for the activity log, also a user DRF authenticates later.
    "pghistory.middleware.HistoryMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
    "console.access.LoginRequiredMiddleware",
    # After login: every page route answers to console/roles.py's ROUTE_PERMISSIONS (console/access.py).
    "console.access.RoutePermissionMiddleware",
    "axes.middleware.AxesMiddleware",  # last: it turns a lockout into the 429 page
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
DATABASE_URL = os.environ.get("DATABASE_URL", "postgres://gavel@127.0.0.1:30329/gavel")
DATABASES = {"default": dj_database_url.parse(DATABASE_URL, conn_max_age=60, conn_health_checks=True)}
# A streaming replica of it (scripts/stack.py cluster): searches, charts and exports read there while it is
# at most GAVEL_REPLICA_MAX_LAG_SECONDS behind, measured at most every GAVEL_REPLICA_CHECK_SECONDS (core/replica.py).
if GAVEL_REPLICA_DATABASE_URL := os.environ.get("GAVEL_REPLICA_DATABASE_URL"):
    DATABASES["replica"] = dj_database_url.parse(GAVEL_REPLICA_DATABASE_URL, conn_max_age=60, conn_health_checks=True)
    DATABASES["replica"]["OPTIONS"] = {"connect_timeout": 2, **DATABASES["replica"].get("OPTIONS", {})}
    DATABASES["replica"]["TEST"] = {"MIRROR": "default"}  # tests read the test database through it
DATABASE_ROUTERS = ["core.replica.PrimaryForWrites"]
GAVEL_REPLICA_MAX_LAG_SECONDS = float(os.environ.get("GAVEL_REPLICA_MAX_LAG_SECONDS", "5"))
GAVEL_REPLICA_CHECK_SECONDS = float(os.environ.get("GAVEL_REPLICA_CHECK_SECONDS", "3"))
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

REDIS_URL = os.environ.get("REDIS_URL", "redis://127.0.0.1:63799/0")
CELERY_BROKER_URL = REDIS_URL
CELERY_TASK_ACKS_LATE = True  # a worker that dies mid-task leaves the task for another
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_IGNORE_RESULT = True
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
# Redis hands a task that was delivered but never acknowledged (its worker died whole) to
# another worker after this many seconds. Keep it at least Celery's longest retry countdown
# (retry_backoff_max, 600 s by default), or a retry waiting in a worker is delivered twice.
CELERY_BROKER_TRANSPORT_OPTIONS = {"visibility_timeout": int(os.environ.get("GAVEL_BROKER_VISIBILITY_TIMEOUT", "600"))}
# One beat, however many are started (console/celery.py): RedBeat keeps the schedule in Redis and beat sends only while
# it holds a lock there, renewed every loop (at most every GAVEL_BEAT_LOCK_SECONDS / 6). A second
# beat waits for the lock and schedules nothing; it takes over when the first stops, or within
# GAVEL_BEAT_LOCK_SECONDS of the first dying without releasing it.
CELERY_BEAT_SCHEDULER = "console.celery:SingleBeat"
CELERY_REDBEAT_REDIS_URL = REDIS_URL
CELERY_REDBEAT_LOCK_TIMEOUT = int(os.environ.get("GAVEL_BEAT_LOCK_SECONDS", "30"))
CELERY_BEAT_MAX_LOOP_INTERVAL = max(1, CELERY_REDBEAT_LOCK_TIMEOUT // 6)
CELERY_BEAT_SCHEDULE = {
    "expire-and-escalate-held-actions": {
        "task": "approvals.tasks.sweep_held_actions",
        "schedule": 30.0,
    },
    # Re-pushes each environment's runtime config: drops expired exceptions, repairs drift.
    "push-runtime-config": {
        "task": "rollout.tasks.push_all_runtime_configs",
        "schedule": 60.0,
    },
    # Sends again the staged batches whose task was lost (audit/handoff.py).
    "requeue-stalled-log-batches": {
        "task": "audit.tasks.requeue_stalled_batches",
        "schedule": float(os.environ.get("GAVEL_INGEST_REQUEUE_EVERY_SECONDS", "30")),
    },
    # Compares what each push-mode OPA instance runs with what Gavel published (fleet/drift.py).
    "check-drift": {
        "task": "fleet.tasks.check_drift",
        "schedule": 60.0,
    },
    # Opens and closes alerts on deny rate and latency (alerts/services.py).
    "evaluate-alerts": {
        "task": "alerts.tasks.evaluate_alerts",
        "schedule": 60.0,
    },
    # Deletes stored batches' staged copies past GAVEL_LOG_BATCH_KEEP_HOURS (audit/ingest/staged.py).
    "delete-stored-log-batches": {
        "task": "audit.tasks.delete_stored_batches",
        "schedule": 3600.0,
    },
    # Drops weeks of decisions past their environment's GAVEL_DECISION_RETENTION.
    "drop-expired-decisions": {
        "task": "core.tasks.drop_expired_decisions",
        "schedule": 3600.0,
    },
    # Deletes export files past GAVEL_EXPORT_RETENTION_DAYS, and what dead jobs left (exports/retention.py).
    "expire-export-files": {
        "task": "exports.tasks.expire_export_files",
        "schedule": 3600.0,
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
        # Token first: a call without credentials then gets 401 with WWW-Authenticate, not 403.
        "rest_framework.authentication.TokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    # The API's routes answer to the same table as the pages (console/roles.py ROUTE_PERMISSIONS).
    "DEFAULT_PERMISSION_CLASSES": ["console.access.RoutePermission"],
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
    "SERVE_PERMISSIONS": ["rest_framework.permissions.IsAuthenticated"],  # the schema is not public
    # Swagger UI (/api/v1/docs/) and Redoc (/api/v1/redoc/) from the sidecar package's static files,
    # never a CDN: the CSP allows scripts and styles from our own origin only.
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
}

# --- OPA -------------------------------------------------------------------------------
OPA_URL = os.environ.get("OPA_URL", "http://127.0.0.1:8181").rstrip("/")
# The environment (dev, staging, prod) the OPA at OPA_URL serves.
GAVEL_ENVIRONMENT = os.environ.get("GAVEL_ENVIRONMENT", "dev")
OPA_TIMEOUT_SECONDS = float(os.environ.get("OPA_TIMEOUT_SECONDS", "5"))
# The `opa` binary compiles versions before they are saved (`opa check`).
OPA_BINARY = os.environ.get("OPA_BINARY", "opa")
# Every `opa` process Gavel runs on authors' Rego (tests, worked examples, replay, explain) is
# sandboxed (core/opa/sandbox.py): no environment, no network builtins, and these limits.
GAVEL_SANDBOX_MEMORY_MB = int(os.environ.get("GAVEL_SANDBOX_MEMORY_MB", "1536"))  # address space; Go reserves ~800
GAVEL_SANDBOX_CPU_SECONDS = int(os.environ.get("GAVEL_SANDBOX_CPU_SECONDS", "120"))
# Worked examples are found while the author waits for the save: OPA gets this long per policy
# for each of its two steps (partial evaluation, then the candidates); past it, the rule's note says so.
GAVEL_EXAMPLES_SECONDS = float(os.environ.get("GAVEL_EXAMPLES_SECONDS", "15"))
# Publishing retries while OPA is unreachable: exponential backoff from this base.
# After a token rotation switches, OPA keeps accepting the old token this long (fleet/opa_authz.py).
GAVEL_TOKEN_ROTATION_GRACE_SECONDS = float(os.environ.get("GAVEL_TOKEN_ROTATION_GRACE_SECONDS", "30"))
GAVEL_PUBLISH_RETRY_BACKOFF = int(os.environ.get("GAVEL_PUBLISH_RETRY_BACKOFF", "5"))
GAVEL_PUBLISH_MAX_RETRIES = int(os.environ.get("GAVEL_PUBLISH_MAX_RETRIES", "10"))
# A policy may be retired only after this many days without a decision.
GAVEL_RETIRE_AFTER_DAYS = int(os.environ.get("GAVEL_RETIRE_AFTER_DAYS", "30"))
# Impact analysis: how many recorded decisions a replay takes by default, at most, and per
# round trip to Gavel's sandboxed OPA server (one request evaluates a whole chunk of distinct
# inputs), how many requests it keeps in flight (default: one per core), and the time limit of each.
GAVEL_REPLAY_DEFAULT_LAST = int(os.environ.get("GAVEL_REPLAY_DEFAULT_LAST", "1000"))
GAVEL_REPLAY_MAX_DECISIONS = int(os.environ.get("GAVEL_REPLAY_MAX_DECISIONS", "100000"))
GAVEL_REPLAY_CHUNK = int(os.environ.get("GAVEL_REPLAY_CHUNK", "1000"))
GAVEL_REPLAY_WORKERS = int(os.environ.get("GAVEL_REPLAY_WORKERS", "0")) or (os.cpu_count() or 2)
GAVEL_REPLAY_TIMEOUT_SECONDS = float(os.environ.get("GAVEL_REPLAY_TIMEOUT_SECONDS", "60"))

# --- Decision-log ingest -----------------------------------------------------------------
# Compressed body limit, and the limit after gunzip (guards against gzip bombs).
GAVEL_LOG_BATCH_MAX_BYTES = int(os.environ.get("GAVEL_LOG_BATCH_MAX_BYTES", str(8 * 1024 * 1024)))
GAVEL_LOG_BATCH_MAX_INFLATED_BYTES = int(
    os.environ.get("GAVEL_LOG_BATCH_MAX_INFLATED_BYTES", str(64 * 1024 * 1024))
)
DATA_UPLOAD_MAX_MEMORY_SIZE = GAVEL_LOG_BATCH_MAX_BYTES + 1024
# Input fields hashed or erased before a decision is stored, e.g. "args.query=hash,user.email=erase".
GAVEL_MASK = os.environ.get("GAVEL_MASK", "")
# How long decisions are kept, per environment, e.g. "prod=400,staging=30,*=90" (days; 0 or
# unset: forever). Whole weeks are dropped once every decision in them is past it.
GAVEL_DECISION_RETENTION = os.environ.get("GAVEL_DECISION_RETENTION", "")
# How long a stored batch's staged copy (OPA's body as uploaded, inputs unmasked) is kept after
# it was received (hours; 0: forever). Failed and waiting batches stay until they are stored.
GAVEL_LOG_BATCH_KEEP_HOURS = float(os.environ.get("GAVEL_LOG_BATCH_KEEP_HOURS", "24"))


def _paths(name: str, default: str) -> list[str]:
    return [path.strip() for path in os.environ.get(name, default).split(",") if path.strip()]


# Where decision inputs keep who asked, which agent, what action on what resource: dotted
# paths, first match wins (core/facts.py). Searchable by filter; the free-text search
# covers reasons plus GAVEL_SEARCH_INPUT_FIELDS.
GAVEL_DECISION_FIELDS = {
    "user": _paths("GAVEL_FIELD_USER", "user.id,user.name,user,subject.id,subject,requested_by"),
    "agent": _paths("GAVEL_FIELD_AGENT", "agent.id,agent.name,agent"),
    "action": _paths("GAVEL_FIELD_ACTION", "action,tool,operation"),
    "resource": _paths("GAVEL_FIELD_RESOURCE", "resource.id,resource.name,resource,resource_type"),
}
GAVEL_SEARCH_INPUT_FIELDS = _paths(
    "GAVEL_SEARCH_INPUT_FIELDS", "action,tool,resource,resource_type,user.id,agent.id,ticket,args.query,reason",
)
# Where an input names its session or conversation (dotted paths, first match wins): the decision
# page lists the other decisions of that session, looked for within GAVEL_SESSION_WINDOW_HOURS.
GAVEL_SESSION_FIELDS = _paths("GAVEL_FIELD_SESSION", "session_id,session.id,context.session_id,context.conversation_id")
GAVEL_SESSION_WINDOW_HOURS = int(os.environ.get("GAVEL_SESSION_WINDOW_HOURS", "24"))
# Backpressure: over this many batches waiting to be stored, uploads get 429 + Retry-After.
GAVEL_INGEST_MAX_QUEUED_BATCHES = int(os.environ.get("GAVEL_INGEST_MAX_QUEUED_BATCHES", "500"))
# More events than this in one upload is refused (413): no OPA batch of its default size comes near it.
GAVEL_INGEST_MAX_EVENTS_PER_BATCH = int(os.environ.get("GAVEL_INGEST_MAX_EVENTS_PER_BATCH", "10000"))
GAVEL_INGEST_RETRY_AFTER_SECONDS = int(os.environ.get("GAVEL_INGEST_RETRY_AFTER_SECONDS", "5"))
# A batch still queued this long after upload, whose task is not pending, is sent to the worker again.
GAVEL_INGEST_REQUEUE_AFTER_SECONDS = int(os.environ.get("GAVEL_INGEST_REQUEUE_AFTER_SECONDS", "60"))

# --- Approvals ---------------------------------------------------------------------------
GAVEL_APPROVAL_TIMEOUT_MINUTES = int(os.environ.get("GAVEL_APPROVAL_TIMEOUT_MINUTES", "60"))
GAVEL_APPROVAL_VALIDITY_MINUTES = int(os.environ.get("GAVEL_APPROVAL_VALIDITY_MINUTES", "15"))
GAVEL_APPROVAL_WEBHOOK_URL = os.environ.get("GAVEL_APPROVAL_WEBHOOK_URL", "")
# Hosts and networks (CIDR) a held action's callback_url may name; anything else is refused (400).
GAVEL_CALLBACK_ALLOWED = os.environ.get("GAVEL_CALLBACK_ALLOWED", "")
GAVEL_APPROVAL_MAX_WAIT_SECONDS = 60  # the longest ?wait= a GET /api/v1/approvals/{id} accepts
# ...of which the server waits at most this long (no database connection held), then says Retry-After.
GAVEL_APPROVAL_HOLD_SECONDS = float(os.environ.get("GAVEL_APPROVAL_HOLD_SECONDS", "10"))
GAVEL_APPROVAL_MAX_WAITS_PER_USER = int(os.environ.get("GAVEL_APPROVAL_MAX_WAITS_PER_USER", "4"))

# --- Exports of decision searches (exports/services.py) -------------------------------------
# A search with more rows than this is exported by a Celery job instead of streamed.
GAVEL_EXPORT_STREAM_MAX_ROWS = int(os.environ.get("GAVEL_EXPORT_STREAM_MAX_ROWS", "100000"))
# Where job exports write their files (created when missing).
GAVEL_EXPORT_DIR = Path(os.environ.get("GAVEL_EXPORT_DIR", str(BASE_DIR / "var" / "exports")))
# Rows fetched per round trip from the server-side cursor.
GAVEL_EXPORT_FETCH_ROWS = int(os.environ.get("GAVEL_EXPORT_FETCH_ROWS", "2000"))


def signing_key(name: str, purpose: str, what: str) -> str:
    """32 random bytes in base64 from the environment; derived from SECRET_KEY in plain DEBUG.
    Without DEBUG a missing or malformed key stops Gavel at start-up, saying which and why."""
    key = os.environ.get(name) or (
        base64.b64encode(hashlib.sha256(f"gavel-{purpose}:{SECRET_KEY}".encode()).digest()).decode() if DEBUG else "")
    if not key:
        raise ImproperlyConfigured(f"{name} must be set when DEBUG is off: {what}, 32 random bytes in base64 "
                                   "(openssl rand -base64 32)")
    try:
        if len(base64.b64decode(key, validate=True)) != 32:
            raise ValueError
    except ValueError:
        raise ImproperlyConfigured(f"{name} is not usable as {what}: it must be 32 bytes in base64 "
                                   "(44 characters ending in '=')") from None
    return key


# The Ed25519 private key that signs every export manifest (exports/signing.py): 32 random bytes,
# base64 (`python -c "import base64,os; print(base64.b64encode(os.urandom(32)).decode())"`). Kept
# like SECRET_KEY: required without DEBUG; scripts/stack.py generates one per local stack, and plain
# DEBUG derives one from SECRET_KEY. Its public half is shown on the exports page.
GAVEL_EXPORT_SIGNING_KEY = signing_key("GAVEL_EXPORT_SIGNING_KEY", "export-signing",
                                       "the Ed25519 key that signs export manifests")
# The key that signs every OPA bundle Gavel builds (fleet/delivery/signing.py, ES256): 32 random bytes in
# base64, from which the P-256 key is derived. Kept like GAVEL_EXPORT_SIGNING_KEY: required without
# DEBUG, generated per local stack by scripts/stack.py, derived from SECRET_KEY in plain DEBUG. Its
# public half and the OPA configuration that requires it are shown on the environments page.
GAVEL_BUNDLE_SIGNING_KEY = signing_key("GAVEL_BUNDLE_SIGNING_KEY", "bundle-signing", "the key that signs OPA bundles")
# Object storage for pull environments that deliver from a bucket (fleet/delivery/storage.py): an
# S3-compatible endpoint (`make test` starts versitygw: scripts/s3_server.py), the bucket, a key
# that may write there (OPAs get a read-only one) and the object names' prefix.
GAVEL_BUNDLE_S3_ENDPOINT = os.environ.get("GAVEL_BUNDLE_S3_ENDPOINT", "")
GAVEL_BUNDLE_S3_BUCKET = os.environ.get("GAVEL_BUNDLE_S3_BUCKET", "gavel-bundles")
GAVEL_BUNDLE_S3_REGION = os.environ.get("GAVEL_BUNDLE_S3_REGION", "us-east-1")
GAVEL_BUNDLE_S3_ACCESS_KEY = os.environ.get("GAVEL_BUNDLE_S3_ACCESS_KEY", "")
GAVEL_BUNDLE_S3_SECRET_KEY = os.environ.get("GAVEL_BUNDLE_S3_SECRET_KEY", "")
GAVEL_BUNDLE_S3_PREFIX = os.environ.get("GAVEL_BUNDLE_S3_PREFIX", "bundles/")
# Days a job export's file is kept (it holds decision inputs); then it is deleted and its record,
# with the hash, stays marked expired (exports/retention.py). 0 keeps files forever.
GAVEL_EXPORT_RETENTION_DAYS = int(os.environ.get("GAVEL_EXPORT_RETENTION_DAYS", "30"))

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": os.environ.get("LOG_LEVEL", "INFO")},
    "loggers": {"django.server": {"level": "WARNING"}},
}

# --- Security -----------------------------------------------------------------------------
# `manage.py check --deploy` is clean with DEBUG off, a real SECRET_KEY, ALLOWED_HOSTS and
# SECURE_SSL_REDIRECT=1 (tests/console/test_security_settings.py runs it). README: "Production settings".
if not DEBUG:
    SESSION_COOKIE_SECURE = env_bool("SESSION_COOKIE_SECURE", True)
    CSRF_COOKIE_SECURE = env_bool("CSRF_COOKIE_SECURE", True)
    # Browsers only honour HSTS over HTTPS, so it costs nothing on plain-HTTP test servers.
    SECURE_HSTS_SECONDS = int(os.environ.get("SECURE_HSTS_SECONDS", str(365 * 24 * 3600)))
    SECURE_HSTS_INCLUDE_SUBDOMAINS = env_bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", True)
    SECURE_HSTS_PRELOAD = env_bool("SECURE_HSTS_PRELOAD", True)
# Off by default because the test stack and docker compose serve plain HTTP; production sets it
# (or its TLS proxy redirects, and sets it anyway for the check).
SECURE_SSL_REDIRECT = env_bool("SECURE_SSL_REDIRECT", False)
if os.environ.get("SECURE_PROXY_SSL_HEADER"):  # e.g. HTTP_X_FORWARDED_PROTO behind a TLS proxy
    SECURE_PROXY_SSL_HEADER = (os.environ["SECURE_PROXY_SSL_HEADER"], "https")
SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SAMESITE = "Lax"
SESSION_COOKIE_AGE = int(os.environ.get("SESSION_COOKIE_AGE", str(12 * 3600)))
CSRF_COOKIE_HTTPONLY = True  # pages send the token from the template (hx-headers), never from JS
CSRF_COOKIE_SAMESITE = "Lax"
X_FRAME_OPTIONS = "DENY"
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
SECURE_CROSS_ORIGIN_OPENER_POLICY = "same-origin"

# Content security policy (django-csp): static files from our own origin only, no inline
# script, no <style> blocks, no framing. htmx's injected indicator style is off (templates/base.html).
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": ["'self'"],
        "script-src": ["'self'"],
        "style-src": ["'self'"],
        # plotly.js (the audit dashboard) positions its charts with style attributes, which cannot
        # run script, and adds two fixed <style> elements, allowed by their hashes (an empty one it
        # fills through the CSSOM, and its base CSS). A plotly upgrade that changes that CSS shows
        # up as a violation in tests/console/test_security_settings.py.
        "style-src-attr": ["'unsafe-inline'"],
        "style-src-elem": ["'self'", "'sha256-47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU='",
                           "'sha256-ji27qzEtxXZW+7dun6UwjHXJ18e6WAin1VvNtkzIE/o='"],
        "img-src": ["'self'", "data:"],
        "font-src": ["'self'"],
        "connect-src": ["'self'"],
        "object-src": ["'none'"],
        "base-uri": ["'none'"],
        "form-action": ["'self'"],
        "frame-ancestors": ["'none'"],
    },
}

# Login throttling (django-axes): after AXES_FAILURE_LIMIT failed logins for one username from
# one address, that pair is refused (429) for AXES_COOLOFF_TIME; a success resets the count.
# The address is REMOTE_ADDR: behind a proxy, let the proxy set it (gunicorn --forwarded-allow-ips).
AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",
    "django.contrib.auth.backends.ModelBackend",
]
AXES_FAILURE_LIMIT = int(os.environ.get("AXES_FAILURE_LIMIT", "5"))
AXES_COOLOFF_TIME = float(os.environ.get("AXES_COOLOFF_HOURS", "0.25"))  # hours
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_RESET_ON_SUCCESS = True
AXES_LOCKOUT_TEMPLATE = "registration/login.html"
AXES_VERBOSE = False  # lockouts are still logged as warnings

# --- Activity log (activity/) -------------------------------------------------------------
# An entry's time is when its row was written, not when its transaction began, so the changes of
# one request keep their order.
PGHISTORY_CREATED_AT_FUNCTION = "CLOCK_TIMESTAMP()"

# --- Drift (fleet/drift.py) ------------------------------------------------------------
GAVEL_DRIFT_WEBHOOK_URL = os.environ.get("GAVEL_DRIFT_WEBHOOK_URL", "")
# Where alert openings and closings are POSTed (alerts/services.py); empty: console only.
GAVEL_ALERT_WEBHOOK_URL = os.environ.get("GAVEL_ALERT_WEBHOOK_URL", "")
# A module re-pushed this many times within the window is escalated to a person instead.
GAVEL_DRIFT_MAX_REPUSH = int(os.environ.get("GAVEL_DRIFT_MAX_REPUSH", "3"))
GAVEL_DRIFT_WINDOW_MINUTES = int(os.environ.get("GAVEL_DRIFT_WINDOW_MINUTES", "60"))
# A replaced OPA instance token keeps working until its successor is first used, or this long.
GAVEL_OPA_TOKEN_GRACE_HOURS = float(os.environ.get("GAVEL_OPA_TOKEN_GRACE_HOURS", "24"))

# --- CI checks (`gavel check`) and /metrics ----------------------------------------------
GAVEL_CHECK_MAX_DOCUMENTS = int(os.environ.get("GAVEL_CHECK_MAX_DOCUMENTS", "1000"))
# /metrics answers a scraper presenting `Authorization: Bearer <GAVEL_METRICS_TOKEN>`, or one
# from an address in GAVEL_METRICS_ALLOWED (hosts' addresses or networks, e.g. 10.0.0.0/8).
# Neither set: /metrics answers nobody.
GAVEL_METRICS_TOKEN = os.environ.get("GAVEL_METRICS_TOKEN", "")
GAVEL_METRICS_ALLOWED = [n.strip() for n in os.environ.get("GAVEL_METRICS_ALLOWED", "").split(",") if n.strip()]
