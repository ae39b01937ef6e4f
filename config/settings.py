"""Goalpost settings: one module, read from the environment, with an embedded default.

With nothing set, Goalpost runs on a SQLite file, a local-memory cache, console email and Celery tasks run
inline. Set DATABASE_URL, REDIS_URL and CELERY_BROKER_URL for PostgreSQL, Redis and real workers.
Production mode (DJANGO_ENV=production, or DJANGO_DEBUG=0) refuses to start without a real SECRET_KEY and
ALLOWED_HOSTS. Every variable is documented in README.md.
"""

import os
from pathlib import Path

import dj_database_url
from celery.schedules import crontab
from django.core.exceptions import ImproperlyConfigured
from django.utils.translation import gettext_lazy as _
from redis.backoff import NoBackoff
from redis.retry import Retry

BASE_DIR = Path(__file__).resolve().parent.parent


def env(name: str, default: str = "") -> str:
    return os.environ.get(name, default).strip()


def env_bool(name: str, default: bool) -> bool:
    value = env(name)
    if not value:
        return default
    return value.lower() in {"1", "true", "yes", "on"}


def env_list(name: str, default: str = "") -> list[str]:
    return [item.strip() for item in env(name, default).split(",") if item.strip()]


DJANGO_ENV = env("DJANGO_ENV", "development")
DEBUG = env_bool("DJANGO_DEBUG", DJANGO_ENV != "production")
PRODUCTION = DJANGO_ENV == "production" or not DEBUG

_DEV_SECRET_KEY = "django-insecure-goalpost-development-key-do-not-use-in-production"  # noqa: S105
SECRET_KEY = env("SECRET_KEY", _DEV_SECRET_KEY)
ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", "" if PRODUCTION else "localhost,127.0.0.1,[::1],testserver")
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS")

if PRODUCTION:
    # Fail loudly rather than run with a guessable key or accept any Host header.
    if SECRET_KEY == _DEV_SECRET_KEY or len(SECRET_KEY) < 50 or len(set(SECRET_KEY)) < 5:
        raise ImproperlyConfigured("SECRET_KEY must be set to a random value of at least 50 characters in production.")
    if not ALLOWED_HOSTS:
        raise ImproperlyConfigured("ALLOWED_HOSTS must list the host names Goalpost serves in production.")

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "django.contrib.humanize",
    "rest_framework",
    "rest_framework.authtoken",
    "django_htmx",
    "template_partials",
    "affiliates",
    "tracking",
    "goals",
    "reports",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.locale.LocaleMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
    "affiliates.middleware.AdminScopesMiddleware",
    "affiliates.tenancy.ProgramMiddleware",
]

ROOT_URLCONF = "config.urls"
WSGI_APPLICATION = "config.wsgi.application"

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
                "affiliates.context_processors.programs",
            ],
        },
    },
]

DATABASE_URL = env("DATABASE_URL", f"sqlite:///{BASE_DIR / 'db.sqlite3'}")
DATABASES = {"default": dj_database_url.parse(DATABASE_URL, conn_max_age=int(env("DB_CONN_MAX_AGE", "60")))}
if DATABASES["default"]["ENGINE"].endswith("sqlite3"):
    # WAL lets the dev server read while a seed or an inline task writes.
    DATABASES["default"]["OPTIONS"] = {"init_command": "PRAGMA journal_mode=WAL;", "timeout": 20}
    DATABASES["default"]["CONN_MAX_AGE"] = 0
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
FORMS_URLFIELD_ASSUME_HTTPS = True  # Django 6 behaviour now: affiliates type bare domains

REDIS_URL = env("REDIS_URL")
if REDIS_URL:
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": REDIS_URL,
            # A dead Redis must cost a page milliseconds, not redis-py's default seconds of retries.
            "OPTIONS": {"socket_connect_timeout": 0.25, "socket_timeout": 0.5, "retry": Retry(NoBackoff(), 0)},
        }
    }
else:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}

AUTH_USER_MODEL = "affiliates.User"
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "home"
LOGOUT_REDIRECT_URL = "login"
PASSWORD_RESET_TIMEOUT = 60 * 60 * 24 * 3
INVITATION_MAX_AGE_SECONDS = int(env("INVITATION_MAX_AGE_SECONDS", str(60 * 60 * 24 * 7)))

LANGUAGE_CODE = "en"
LANGUAGES = [("en", _("English")), ("pl", _("Polish")), ("ru", _("Russian")), ("sv", _("Swedish"))]
LOCALE_PATHS = [BASE_DIR / "locale"]
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = BASE_DIR / "staticfiles"
STATICFILES_DIRS = [BASE_DIR / "static"]
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"
        if PRODUCTION
        else "django.contrib.staticfiles.storage.StaticFilesStorage"
    },
}

# Email: console by default; SMTP when EMAIL_HOST is set.
DEFAULT_FROM_EMAIL = env("DEFAULT_FROM_EMAIL", "Goalpost <noreply@goalpost.local>")
EMAIL_HOST = env("EMAIL_HOST")
if EMAIL_HOST:
    EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    EMAIL_PORT = int(env("EMAIL_PORT", "587"))
    EMAIL_HOST_USER = env("EMAIL_HOST_USER")
    EMAIL_HOST_PASSWORD = env("EMAIL_HOST_PASSWORD")
    EMAIL_USE_TLS = env_bool("EMAIL_USE_TLS", True)
else:
    EMAIL_BACKEND = env("EMAIL_BACKEND", "django.core.mail.backends.console.EmailBackend")
    EMAIL_FILE_PATH = env("EMAIL_FILE_PATH", str(BASE_DIR / "sent_emails"))

# Celery: no broker means tasks run inline (the `make run` path).
CELERY_BROKER_URL = env("CELERY_BROKER_URL", REDIS_URL)
CELERY_RESULT_BACKEND = None
CELERY_TASK_ALWAYS_EAGER = not CELERY_BROKER_URL
CELERY_TASK_EAGER_PROPAGATES = True
CELERY_TASK_IGNORE_RESULT = True
CELERY_TIMEZONE = "UTC"
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_BEAT_SCHEDULE: dict = {}

# Rollups (goals/rollups.py, docs/rollups.md): dirty (program, affiliate, day) keys are recorded in PostgreSQL
# with each event; beat only triggers their processing, so a lost message delays a recompute, never loses it.
ROLLUP_BATCH_KEYS = int(env("ROLLUP_BATCH_KEYS", "5000"))  # keys claimed per program per transaction
ROLLUP_RUN_SECONDS = float(env("ROLLUP_RUN_SECONDS", "5"))  # how long one process_rollups_task keeps going
ROLLUP_SWEEP_SECONDS = float(env("ROLLUP_SWEEP_SECONDS", "50"))
ROLLUP_BACKLOG_WARN_SECONDS = float(env("ROLLUP_BACKLOG_WARN_SECONDS", "60"))
ROLLUP_RECONCILE_DAYS = int(env("ROLLUP_RECONCILE_DAYS", "3"))  # local days, today included
ROLLUP_REBUILD_CHUNK_DAYS = int(env("ROLLUP_REBUILD_CHUNK_DAYS", "1"))  # local days per rebuild transaction
CELERY_BEAT_SCHEDULE["process-rollups"] = {
    "task": "goals.tasks.process_rollups_task",
    "schedule": 1.0,
    "options": {"expires": 5},  # runs that piled up while workers were down are dropped; the keys are not
}
CELERY_BEAT_SCHEDULE["sweep-rollups"] = {"task": "goals.tasks.sweep_rollups_task", "schedule": 60.0}
CELERY_BEAT_SCHEDULE["reconcile-stats"] = {
    "task": "goals.tasks.reconcile_stats_task",
    "schedule": crontab(hour=3, minute=15),  # UTC; each program reconciles its last local days
}

# Goals (goals/progress.py, goals/closing.py): progress follows time even without events; each program closes
# its previous month after its grace period, in its own time zone; reversals after a close are clawed back.
CELERY_BEAT_SCHEDULE["goals-refresh-progress"] = {
    "task": "goals.tasks.refresh_all_goal_progress_task",
    "schedule": 5 * 60.0,
    "options": {"expires": 4 * 60},
}
CELERY_BEAT_SCHEDULE["goals-close-due-months"] = {
    "task": "goals.tasks.close_due_months_task",
    "schedule": 60 * 60.0,  # hourly: a month closes within the hour its grace period ends, local time
    "options": {"expires": 50 * 60},
}
CELERY_BEAT_SCHEDULE["goals-record-clawbacks"] = {
    "task": "goals.tasks.record_all_clawbacks_task",
    "schedule": 60 * 60.0,
    "options": {"expires": 50 * 60},
}

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "rest_framework.authentication.TokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_PAGINATION_CLASS": "rest_framework.pagination.PageNumberPagination",
    "PAGE_SIZE": 50,
    "EXCEPTION_HANDLER": "affiliates.api.errors.json_exception_handler",
    "UNAUTHENTICATED_USER": "django.contrib.auth.models.AnonymousUser",
}

if PRODUCTION:
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    SECURE_SSL_REDIRECT = env_bool("SECURE_SSL_REDIRECT", True)
    SECURE_HSTS_SECONDS = int(env("SECURE_HSTS_SECONDS", str(60 * 60 * 24 * 365)))
    SECURE_HSTS_INCLUDE_SUBDOMAINS = True
    SECURE_HSTS_PRELOAD = env_bool("SECURE_HSTS_PRELOAD", True)
    SESSION_COOKIE_SECURE = True
    CSRF_COOKIE_SECURE = True

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": env("LOG_LEVEL", "INFO")},
    "loggers": {
        "django.db.backends": {"level": "INFO"},
        # Inline (eager) tasks would log a "succeeded" line per task into the dev server's console.
        "celery.app.trace": {"level": "INFO" if CELERY_BROKER_URL else "WARNING"},
    },
}

# Absolute links in emails point here.
SITE_URL = env("SITE_URL", "http://127.0.0.1:8000")

# How many reverse proxies in front of Goalpost append to X-Forwarded-For (0: use REMOTE_ADDR).
TRUSTED_PROXY_COUNT = int(env("TRUSTED_PROXY_COUNT", "0"))

# The click path (tracking/clicks.py, docs/tracking.md). CLICK_BUFFER=database writes every click straight to
# the database (no loss if Redis crashes, lower throughput); otherwise clicks go through a Redis stream that
# the drain task empties every second. The tuning knobs below are plain settings, changed in code with a reason.
CLICK_BUFFER = env("CLICK_BUFFER", "redis")
CLICK_BUFFER_URL = env("CLICK_BUFFER_URL", REDIS_URL)
# The postback hot path (tracking/hotpath.py): one prepared read, one prepared write on PostgreSQL. Off behind a
# pooler that resets sessions between transactions (PgBouncer in transaction mode drops prepared statements).
TRACKING_SQL_HOT_PATH = env_bool("TRACKING_SQL_HOT_PATH", True)
CLICK_REDIS_PREFIX = "goalpost:"
CLICK_REDIS_TIMEOUT = 0.1  # seconds a click waits for Redis before writing to the database instead
CLICK_REDIS_RETRY_SECONDS = 2.0  # circuit breaker: a process stays off Redis this long after a failure
CLICK_STREAM_MAXLEN = 5_000_000  # ~2 GB of Redis memory; hours of clicks at full speed if the drain stops
CLICK_DRAIN_BATCH = 5000
CLICK_DRAIN_MAX_PER_RUN = 200_000
CLICK_DRAIN_LOCK_SECONDS = 60
CLICK_DRAIN_METHOD = "copy"  # PostgreSQL COPY + INSERT … SELECT … ON CONFLICT; "bulk_create" otherwise (bench/drain.py)
CLICK_FIND_WAIT_SECONDS = 2.0
CLICK_EXTRAS_CACHE_SECONDS = 60  # a changed click cap reaches the redirect within this time
CLICK_MAX_QUERY_STRING = 8192  # longer query strings are ignored as a whole (the visitor is still redirected)
CELERY_BEAT_SCHEDULE["drain-event-buffer"] = {
    "task": "tracking.tasks.drain_event_buffer_task",
    "schedule": 1.0,
    "options": {"expires": 5},  # a worker that was down does not find a pile of drains to run
}
# Conversions (tracking/services.py): approve pending conversions whose hold period is over, per program.
CELERY_BEAT_SCHEDULE["auto-approve-conversions"] = {
    "task": "tracking.tasks.auto_approve_all_programs_task",
    "schedule": 15 * 60.0,
    "options": {"expires": 10 * 60},
}
