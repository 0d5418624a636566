"""Settings, read from the environment only (django-environ); every default is safe for a local demo.

Local: SQLite under var/ and an embedded Celery broker (kombu's filesystem transport), so nothing
but this checkout is needed. Production (`DJANGO_ENV=production`, or DEBUG off): PostgreSQL and Redis
from `DATABASE_URL` / `REDIS_URL`, and the process refuses to start with DEBUG on or a default secret.
"""

from __future__ import annotations

from pathlib import Path

import environ
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = BASE_DIR / "var"

env = environ.Env()


def _env_path(name: str, default: Path) -> Path:
    return Path(env.str(name, default=str(default)))


# A local-only secret: production refuses to start with it (see below).
INSECURE_SECRET_KEY = "django-insecure-local-demo-key-never-use-in-production"

DJANGO_ENV = env.str("DJANGO_ENV", default="development")
DEBUG = env.bool("DEBUG", default=DJANGO_ENV != "production")
PRODUCTION = DJANGO_ENV == "production" or not DEBUG
SECRET_KEY = env.str("SECRET_KEY", default=INSECURE_SECRET_KEY)
ALLOWED_HOSTS = env.list(
    "ALLOWED_HOSTS", default=[] if PRODUCTION else ["localhost", "127.0.0.1", "[::1]", "testserver"]
)
CSRF_TRUSTED_ORIGINS = env.list("CSRF_TRUSTED_ORIGINS", default=[])

if PRODUCTION:
    if DEBUG:
        raise ImproperlyConfigured(
            "DJANGO_ENV=production with DEBUG on: set DEBUG=false (DEBUG leaks settings and source in error pages)."
        )
    if SECRET_KEY == INSECURE_SECRET_KEY or SECRET_KEY.startswith("django-insecure") or len(SECRET_KEY) < 32:
        raise ImproperlyConfigured(
            "production needs its own SECRET_KEY (50+ random characters), e.g. "
            "`python -c 'import secrets; print(secrets.token_urlsafe(50))'`; the default key is public."
        )
    SESSION_COOKIE_SECURE = True
    CSRF_COOKIE_SECURE = True
    SECURE_SSL_REDIRECT = env.bool("SECURE_SSL_REDIRECT", default=True)
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    SECURE_HSTS_SECONDS = env.int("SECURE_HSTS_SECONDS", default=60 * 60 * 24 * 365)
    SECURE_HSTS_INCLUDE_SUBDOMAINS = True
    SECURE_HSTS_PRELOAD = True
    SECURE_CONTENT_TYPE_NOSNIFF = True

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "rest_framework",
    "rest_framework.authtoken",
    "drf_spectacular",
    "django_celery_beat",
    "annotator",
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
]

ROOT_URLCONF = "config.urls"
WSGI_APPLICATION = "config.wsgi.application"
ASGI_APPLICATION = "config.asgi.application"

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
            ],
        },
    },
]

DATABASE_URL = env.str("DATABASE_URL", default="") or f"sqlite:///{VAR_DIR / 'db.sqlite3'}"
DATABASES = {"default": env.db_url_config(DATABASE_URL)}
# One connection per worker thread kept open: a new connection per request costs more than a next-task query.
DATABASES["default"]["CONN_MAX_AGE"] = env.int("CONN_MAX_AGE", default=60)
DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
if DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql":
    # Parameters bound by the server and statements prepared on their fifth run: planning the queue's
    # statements cost PostgreSQL more than running them (the token lookup: 0.5 ms to plan, 0.04 ms to
    # run), and quoting every value into the SQL text cost the web process too. bench/hot_path_profile.py,
    # CPU per next + submit: PostgreSQL 9.1 -> 4.8 ms, the web process 14.1 -> 11.9 ms.
    # A pooler in transaction mode (PgBouncer before 1.21) cannot keep prepared statements per
    # client: set DATABASE_PREPARED_STATEMENTS=false behind one.
    DATABASES["default"].setdefault("OPTIONS", {}).update(
        {
            "server_side_binding": True,
            "prepare_threshold": 5 if env.bool("DATABASE_PREPARED_STATEMENTS", default=True) else None,
        }
    )
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # Waiting a little for SQLite's single writer beats failing a lease with "database is locked".
    DATABASES["default"].setdefault("OPTIONS", {}).update({"timeout": 20, "transaction_mode": "IMMEDIATE"})
    # A file, not memory, so that a Celery worker started by the integration tests sees the test data.
    DATABASES["default"]["TEST"] = {"NAME": str(VAR_DIR / "test_db.sqlite3")}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# Sessions in the database, read on every call of a logged-in browser with one hand-written statement.
SESSION_ENGINE = "annotator.sessions"

# Logins go through RoleModelBackend. ModelBackend stays listed so that sessions made before it (which
# name ModelBackend) stay signed in; a wrong password is then checked by both.
AUTHENTICATION_BACKENDS = ["annotator.backends.RoleModelBackend", "django.contrib.auth.backends.ModelBackend"]

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "project-list"
LOGOUT_REDIRECT_URL = "login"

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = _env_path("STATIC_ROOT", VAR_DIR / "static")
STATICFILES_DIRS = [BASE_DIR / "static"] if (BASE_DIR / "static").is_dir() else []
MEDIA_URL = "media/"
MEDIA_ROOT = _env_path("MEDIA_ROOT", VAR_DIR / "media")

# Images, models and exports go through the storage API so web servers and GPU workers can live on
# different machines: local files by default, an S3-compatible bucket when S3_BUCKET is set.
S3_BUCKET = env.str("S3_BUCKET", default="")
if S3_BUCKET:
    _default_storage = {
        "BACKEND": "storages.backends.s3.S3Storage",
        "OPTIONS": {
            "bucket_name": S3_BUCKET,
            "endpoint_url": env.str("S3_ENDPOINT_URL", default=None),
            "region_name": env.str("S3_REGION", default=None),
            "access_key": env.str("S3_ACCESS_KEY_ID", default=None),
            "secret_key": env.str("S3_SECRET_ACCESS_KEY", default=None),
            "default_acl": None,
            "querystring_auth": True,
        },
    }
else:
    _default_storage = {"BACKEND": "django.core.files.storage.FileSystemStorage"}
STORAGES = {
    "default": _default_storage,
    "staticfiles": {
        "BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"
        if PRODUCTION
        else "django.contrib.staticfiles.storage.StaticFilesStorage"
    },
}

# Models: `python -m reward bootstrap` writes captioner-v0 and tldr-v0 here; a ModelVersion's
# relative path is resolved against it.
TLDR_MODELS_DIR = _env_path("TLDR_MODELS_DIR", VAR_DIR / "models")
TLDR_BACKBONE = env.str("TLDR_BACKBONE", default="")
# Upload limits: an image file over TLDR_MAX_UPLOAD_BYTES, or with more pixels than
# TLDR_MAX_IMAGE_PIXELS (a decompression bomb), is refused with a message naming it.
TLDR_MAX_UPLOAD_BYTES = env.int("TLDR_MAX_UPLOAD_BYTES", default=20 * 1024 * 1024)
TLDR_MAX_ZIP_BYTES = env.int("TLDR_MAX_ZIP_BYTES", default=2 * 1024 * 1024 * 1024)
TLDR_MAX_IMAGE_PIXELS = env.int("TLDR_MAX_IMAGE_PIXELS", default=50_000_000)
# The learning loop (README, "The learning loop"). A training job's Celery soft time limit; training
# stops TLDR_TRAIN_EVAL_SECONDS before it, so the model trained so far is saved, evaluated and gated in
# time. The hard limit kills a job that still overruns; a killed job registers nothing.
TLDR_TRAIN_TIME_LIMIT = env.int("TLDR_TRAIN_TIME_LIMIT", default=2 * 3600)
TLDR_TRAIN_HARD_TIME_LIMIT = env.int("TLDR_TRAIN_HARD_TIME_LIMIT", default=TLDR_TRAIN_TIME_LIMIT + 15 * 60)
TLDR_TRAIN_EVAL_SECONDS = env.int("TLDR_TRAIN_EVAL_SECONDS", default=10 * 60)
# Training budgets when a trigger names none (minutes of training, before evaluation).
TLDR_REWARD_TRAIN_MINUTES = env.float("TLDR_REWARD_TRAIN_MINUTES", default=10.0)
# Passes over a project's corrections at most, whatever the minutes: more overfits a few hundred of them.
TLDR_REWARD_TRAIN_EPOCHS = env.float("TLDR_REWARD_TRAIN_EPOCHS", default=3.0)
# The most corrections a TLDR retraining reads, the newest (it holds their images decoded in memory).
TLDR_REWARD_TRAIN_CORRECTIONS = env.int("TLDR_REWARD_TRAIN_CORRECTIONS", default=5000)
TLDR_POLICY_TRAIN_MINUTES = env.float("TLDR_POLICY_TRAIN_MINUTES", default=30.0)
# The most images a captioner training job trains on (a new sample per job) and is judged on (the
# held-out images first in hash order): it holds them decoded in memory.
TLDR_POLICY_TRAIN_IMAGES = env.int("TLDR_POLICY_TRAIN_IMAGES", default=2000)
TLDR_POLICY_EVAL_IMAGES = env.int("TLDR_POLICY_EVAL_IMAGES", default=300)
# The vision-encoder verifier that method ppo_verifier rewards the captioner with (a folder, relative
# to TLDR_MODELS_DIR or absolute); that method is refused while it is unset.
TLDR_VERIFIER_DIR = env.str("TLDR_VERIFIER_DIR", default="")
# The fewest corrections a project needs before any training job is queued (a held-out slice needs some).
TLDR_TRAIN_MIN_CORRECTIONS = env.int("TLDR_TRAIN_MIN_CORRECTIONS", default=20)
# The periodic check retrains TLDR for a project once this many corrections arrived since its last retraining.
TLDR_RETRAIN_MIN_CORRECTIONS = env.int("TLDR_RETRAIN_MIN_CORRECTIONS", default=200)
TLDR_RETRAIN_CHECK_SECONDS = env.int("TLDR_RETRAIN_CHECK_SECONDS", default=15 * 60)
DATA_UPLOAD_MAX_MEMORY_SIZE = 10 * 1024 * 1024
FILE_UPLOAD_MAX_MEMORY_SIZE = 10 * 1024 * 1024

# Celery. Redis when REDIS_URL (or CELERY_BROKER_URL) is set; otherwise kombu's filesystem transport
# under var/celery/, an embedded broker that lets the demo run a worker with no server.
REDIS_URL = env.str("REDIS_URL", default="")
CELERY_BROKER_URL = env.str("CELERY_BROKER_URL", default=REDIS_URL or "filesystem://")
CELERY_QUEUE_DIR = _env_path("CELERY_QUEUE_DIR", VAR_DIR / "celery")
if CELERY_BROKER_URL.startswith("filesystem://"):
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "data_folder_in": str(CELERY_QUEUE_DIR / "queue"),
        "data_folder_out": str(CELERY_QUEUE_DIR / "queue"),
        "processed_folder": str(CELERY_QUEUE_DIR / "processed"),
        # Broadcast/control messages (ping, inspect) too; kombu's default is ./control.
        "control_folder": str(CELERY_QUEUE_DIR / "control"),
        "store_processed": False,
    }
else:
    # Longer than the longest job (a training job's hard time limit): an unacknowledged message is
    # redelivered after this, and with acks_late a running job would otherwise start twice. A message
    # redelivered after it therefore always means its worker is gone.
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "visibility_timeout": env.int(
            "CELERY_VISIBILITY_TIMEOUT", default=max(4 * 3600, TLDR_TRAIN_HARD_TIME_LIMIT + 3600)
        )
    }
# django-celery-beat's DatabaseScheduler copies this into its tables at start; the admin can change it there.
CELERY_BEAT_SCHEDULE = {
    "learning-loop-check": {
        "task": "annotator.tasks.learning_loop_check_task",
        "schedule": float(TLDR_RETRAIN_CHECK_SECONDS),
        "options": {"queue": "default"},
    }
}

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "rest_framework.authentication.SessionAuthentication",
        "annotator.api.authentication.TokenAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_PAGINATION_CLASS": "rest_framework.pagination.PageNumberPagination",
    "PAGE_SIZE": 50,
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
}
SPECTACULAR_SETTINGS = {
    "TITLE": "TLDR Annotator API",
    "DESCRIPTION": "Caption-fixing tasks highlighted by a token-level reward model; imports, jobs and models.",
    "VERSION": "0.1.0",
    "SERVE_INCLUDE_SCHEMA": False,
}

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": env.str("LOG_LEVEL", default="INFO")},
}
