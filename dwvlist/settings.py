"""Settings for dwvlist, all read from the environment.

Every variable is listed, with its default, in README.md and .env.example;
BASE_DIR/.env (or the file named by ENV_FILE) is read first when present.
Bad values stop start-up with a message naming the variable.
"""

from __future__ import annotations

import os
from datetime import timedelta
from pathlib import Path

import dj_database_url
from csp.constants import NONCE, NONE, SELF, UNSAFE_INLINE
from django.core.exceptions import ImproperlyConfigured

from dwvlist.clientip import trusted_networks_parse
from dwvlist.envvars import (
    env_bool,
    env_choice,
    env_file_load,
    env_float,
    env_int,
    env_list,
    env_networks,
    env_str,
    env_url,
)
from dwvlist.errors import sentry_init
from dwvlist.logs import logging_config
from dwvlist.secretkeys import DEVELOPMENT_KEY, secret_key_weakness

BASE_DIR = Path(__file__).resolve().parent.parent
# BASE_DIR/.env (or ENV_FILE), when present, fills in what the environment leaves unset.
env_file_load(base_dir=BASE_DIR)
VAR_DIR = Path(env_str("VAR_DIR", str(BASE_DIR / "var")))

DEBUG = env_bool("DEBUG", False)

SECRET_KEY = env_str("SECRET_KEY", "")
if not SECRET_KEY:
    if not DEBUG:
        raise ImproperlyConfigured("SECRET_KEY must be set when DEBUG is off")
    SECRET_KEY = DEVELOPMENT_KEY
elif len(SECRET_KEY) < 50:
    raise ImproperlyConfigured("SECRET_KEY must be at least 50 characters long")
# Old keys after a rotation, newest first: links and address hashes made with
# them still verify (see "Security" in README.md).
SECRET_KEY_FALLBACKS = env_list("SECRET_KEY_FALLBACKS", [])
if not DEBUG:
    for _name, _key in [("SECRET_KEY", SECRET_KEY), *(("SECRET_KEY_FALLBACKS", k) for k in SECRET_KEY_FALLBACKS)]:
        _weakness = secret_key_weakness(_key)
        if _weakness:
            raise ImproperlyConfigured(f"{_name} is unfit for production: {_weakness}")

SITE_URL = env_url("SITE_URL", "http://127.0.0.1:8000", schemes=("http", "https")).rstrip("/")
SITE_ID = 1

# Reverse proxies whose X-Forwarded-For is believed (addresses or CIDR ranges);
# see dwvlist/clientip.py. Empty: the connection's own address is the client's.
TRUSTED_PROXIES = env_list("TRUSTED_PROXIES", [])
trusted_networks_parse(TRUSTED_PROXIES)

ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", ["localhost", "127.0.0.1", "[::1]"])
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS", [])

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django.contrib.sites",
    "anymail",
    "dwvlist.apps.DwvlistConfig",
    "dwvlist.audit",
    "subscriptions",
    "issues",
    "api",
    "ninja",  # only for the static files of the API's browsable docs
    "axes",
    "csp",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "csp.middleware.CSPMiddleware",
    "dwvlist.headers.PermissionsPolicyMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "dwvlist.audit.middleware.AuditMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "axes.middleware.AxesMiddleware",  # last, as django-axes requires
]

ROOT_URLCONF = "dwvlist.urls"
WSGI_APPLICATION = "dwvlist.wsgi.application"

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
                "dwvlist.context_processors.site",
                "issues.navigation.staff_nav",
            ],
        },
    },
]

# --- Database -------------------------------------------------------------

DATABASE_URL = env_str("DATABASE_URL", f"sqlite:///{VAR_DIR / 'dwvlist.sqlite3'}")
try:
    _db = dj_database_url.parse(DATABASE_URL, conn_max_age=env_int("DB_CONN_MAX_AGE", 60, minimum=0))
except Exception as exc:  # dj_database_url raises several types for junk
    raise ImproperlyConfigured(f"DATABASE_URL could not be parsed: {exc}") from None
if _db["ENGINE"] not in ("django.db.backends.postgresql", "django.db.backends.sqlite3"):
    raise ImproperlyConfigured("DATABASE_URL must be a postgres:// or sqlite:/// URL")
if _db["ENGINE"] == "django.db.backends.sqlite3":
    # A file-backed test database, so that worker processes started by the
    # tests see the same rows as the test itself.
    _db["TEST"] = {"NAME": str(VAR_DIR / "test-dwvlist.sqlite3")}
    _db["OPTIONS"] = {"timeout": 30, "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;"}
    _db["CONN_MAX_AGE"] = 0
    Path(_db["NAME"]).parent.mkdir(parents=True, exist_ok=True)
DATABASES = {"default": _db}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- Redis, cache and Celery ---------------------------------------------------

REDIS_URL = env_url("REDIS_URL", "redis://127.0.0.1:6379/0", schemes=("redis", "rediss", "unix"))

CACHES = {
    "default": {
        "BACKEND": "django.core.cache.backends.redis.RedisCache",
        "LOCATION": REDIS_URL,
        "KEY_PREFIX": "dwvlist",
    }
}

CELERY_BROKER_URL = REDIS_URL
CELERY_RESULT_BACKEND = REDIS_URL
CELERY_TASK_DEFAULT_QUEUE = "default"
CELERY_TASK_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_RESULT_EXPIRES = 3600
CELERY_TASK_SOFT_TIME_LIMIT = env_int("CELERY_TASK_SOFT_TIME_LIMIT", 300, minimum=1)
CELERY_TASK_TIME_LIMIT = env_int("CELERY_TASK_TIME_LIMIT", 360, minimum=1)
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
# A task unacknowledged for this long is handed to another worker; it must
# outlast the longest batch, which the time limit above bounds.
CELERY_BROKER_TRANSPORT_OPTIONS = {"visibility_timeout": CELERY_TASK_TIME_LIMIT * 2}
CELERY_BEAT_SCHEDULE_FILENAME = str(VAR_DIR / "celerybeat-schedule")
# Every worker writes a heartbeat key this often; /healthz wants one that is
# younger than WORKER_HEARTBEAT_MAX_AGE seconds.
WORKER_HEARTBEAT_INTERVAL = 15
WORKER_HEARTBEAT_MAX_AGE = 60
# /healthz?token=<this> adds the errors' text to what it says is down; empty: never.
HEALTHZ_TOKEN = env_str("HEALTHZ_TOKEN", "")

# --- Mail --------------------------------------------------------------------

ANYMAIL_ESPS = [
    "amazon_ses",
    "brevo",
    "mailersend",
    "mailgun",
    "mailjet",
    "mailtrap",
    "mandrill",
    "postal",
    "postmark",
    "resend",
    "scaleway",
    "sendgrid",
    "sparkpost",
    "unisender_go",
]
EMAIL_TRANSPORT = env_choice("EMAIL_TRANSPORT", "outbox", ["outbox", "smtp", "console", *ANYMAIL_ESPS])
OUTBOX_DIR = Path(env_str("OUTBOX_DIR", str(VAR_DIR / "outbox")))

if EMAIL_TRANSPORT == "outbox":
    EMAIL_BACKEND = "dwvlist.mail.OutboxBackend"
elif EMAIL_TRANSPORT == "console":
    EMAIL_BACKEND = "django.core.mail.backends.console.EmailBackend"
elif EMAIL_TRANSPORT == "smtp":
    EMAIL_BACKEND = "dwvlist.mail.SmtpBackend"
else:
    EMAIL_BACKEND = f"anymail.backends.{EMAIL_TRANSPORT}.EmailBackend"

EMAIL_HOST = env_str("EMAIL_HOST", "localhost")
EMAIL_PORT = env_int("EMAIL_PORT", 25, minimum=1, maximum=65535)
EMAIL_HOST_USER = env_str("EMAIL_HOST_USER", "")
EMAIL_HOST_PASSWORD = env_str("EMAIL_HOST_PASSWORD", "")
EMAIL_USE_TLS = env_bool("EMAIL_USE_TLS", False)
EMAIL_USE_SSL = env_bool("EMAIL_USE_SSL", False)
if EMAIL_USE_TLS and EMAIL_USE_SSL:
    raise ImproperlyConfigured("EMAIL_USE_TLS and EMAIL_USE_SSL cannot both be on")
EMAIL_TIMEOUT = env_int("EMAIL_TIMEOUT", 30, minimum=1)
DEFAULT_FROM_EMAIL = env_str("DEFAULT_FROM_EMAIL", "dwvlist <list@localhost>")
SERVER_EMAIL = env_str("SERVER_EMAIL", DEFAULT_FROM_EMAIL)

# ANYMAIL_* variables become anymail settings: ANYMAIL_MAILGUN_API_KEY is
# ANYMAIL["MAILGUN_API_KEY"], ANYMAIL_WEBHOOK_SECRET is ANYMAIL["WEBHOOK_SECRET"].
ANYMAIL = {
    key.removeprefix("ANYMAIL_"): value for key, value in os.environ.items() if key.startswith("ANYMAIL_") and value
}
if "REQUESTS_TIMEOUT" in ANYMAIL:
    ANYMAIL["REQUESTS_TIMEOUT"] = env_float("ANYMAIL_REQUESTS_TIMEOUT", 30.0, minimum=0.1)
# anymail's yes/no settings are parsed like every other boolean: the string
# "False" must not reach anymail, which would take it as true.
ANYMAIL_BOOLEANS = (
    "AMAZON_SES_AUTO_CONFIRM_SNS_SUBSCRIPTIONS",
    "DEBUG_API_REQUESTS",
    "IGNORE_RECIPIENT_STATUS",
    "IGNORE_UNSUPPORTED_FEATURES",
    "SENDGRID_GENERATE_MESSAGE_ID",
)
for _name in ANYMAIL_BOOLEANS:
    if f"ANYMAIL_{_name}" in os.environ:
        ANYMAIL[_name] = env_bool(f"ANYMAIL_{_name}", False)
ANYMAIL_WEBHOOK_SECRET = ANYMAIL.get("WEBHOOK_SECRET", "")
if ANYMAIL_WEBHOOK_SECRET and ":" not in ANYMAIL_WEBHOOK_SECRET:
    raise ImproperlyConfigured("ANYMAIL_WEBHOOK_SECRET must look like user:password")

# --- Sending -----------------------------------------------------------------

SEND_RATE_LIMIT = env_float("SEND_RATE_LIMIT", 0.0, minimum=0.0)  # messages/second, 0 = unlimited
SEND_BATCH_SIZE = env_int("SEND_BATCH_SIZE", 500, minimum=1, maximum=1000)
SEND_MAX_ATTEMPTS = env_int("SEND_MAX_ATTEMPTS", 6, minimum=1, maximum=50)
SEND_CLAIM_TIMEOUT = env_int("SEND_CLAIM_TIMEOUT", 600, minimum=1)  # seconds before a claim is reaped
SEND_RETRY_BASE_SECONDS = env_int("SEND_RETRY_BASE_SECONDS", 30, minimum=0)  # first retry delay, doubling
SEND_LANES = env_int("SEND_LANES", 4, minimum=1, maximum=64)  # batch tasks in flight per issue
SEND_ALIVE_TTL = env_int("SEND_ALIVE_TTL", 120, minimum=1)  # seconds an issue counts as worked on
SEND_REAP_INTERVAL = env_float("SEND_REAP_INTERVAL", 60.0, minimum=0.5)  # seconds between reaper runs

CONFIRMATION_MAX_AGE_DAYS = env_int("CONFIRMATION_MAX_AGE_DAYS", 7, minimum=1)
CONFIRMATION_MAIL_INTERVAL = env_int("CONFIRMATION_MAIL_INTERVAL", 600, minimum=0)  # seconds per address
SUBSCRIBE_POSTS_PER_MINUTE = env_int("SUBSCRIBE_POSTS_PER_MINUTE", 10, minimum=1)
# An import, queued or running, with no chunk committed for this many seconds
# is continued where it stopped (its worker died, or its task was lost).
IMPORT_STALL_SECONDS = env_int("IMPORT_STALL_SECONDS", 300, minimum=1)
# A staff job (an export, a bulk action) whose worker shows no progress for this long is reported failed.
STAFF_JOB_STALL_SECONDS = env_int("STAFF_JOB_STALL_SECONDS", 120, minimum=10)
# The editor home's figures are counted by beat this often, not on each visit.
DASHBOARD_REFRESH_SECONDS = env_int("DASHBOARD_REFRESH_SECONDS", 60, minimum=5)

# --- The REST API --------------------------------------------------------------

API_RATE_PER_MINUTE = env_int("API_RATE_PER_MINUTE", 600, minimum=0)  # calls per token per minute; 0: no limit

# --- Provider feedback (webhooks) ----------------------------------------------

# A Mailgun webhook signed longer ago than this (seconds), or whose signature
# token was already used, is refused (a captured request cannot be replayed).
MAILGUN_WEBHOOK_MAX_AGE = env_int("MAILGUN_WEBHOOK_MAX_AGE", 300, minimum=10, maximum=3600)

SOFT_BOUNCE_LIMIT = env_int("SOFT_BOUNCE_LIMIT", 3, minimum=1)  # issues in a row that soft-bounce, then suppress
# Seconds a webhook request may spend applying effects before it hands the
# rest of its events to Celery (0 queues all of them).
FEEDBACK_INLINE_SECONDS = env_float("FEEDBACK_INLINE_SECONDS", 2.0, minimum=0.0)
# A request's events wait in Redis for up to FEEDBACK_DRAINERS worker tasks at
# once, which store them in groups of FEEDBACK_DRAIN_BATCH, unless the request
# brings at most FEEDBACK_INLINE_EVENTS and no others wait: it stores those itself.
FEEDBACK_INLINE_EVENTS = env_int("FEEDBACK_INLINE_EVENTS", 100, minimum=0)
FEEDBACK_DRAIN_BATCH = env_int("FEEDBACK_DRAIN_BATCH", 1000, minimum=1, maximum=10_000)
FEEDBACK_DRAINERS = env_int("FEEDBACK_DRAINERS", 2, minimum=1, maximum=32)
# Events stored over FEEDBACK_SWEEP_AFTER seconds ago whose effects were never
# applied (their task lost with the broker) are queued again, checked every
# FEEDBACK_SWEEP_INTERVAL seconds.
FEEDBACK_SWEEP_AFTER = env_int("FEEDBACK_SWEEP_AFTER", 600, minimum=0)
FEEDBACK_SWEEP_INTERVAL = env_float("FEEDBACK_SWEEP_INTERVAL", 300.0, minimum=0.5)
# Readers' replies through a provider's inbound webhook may be this large (the
# providers post up to about 25 MB with attachments); only the inbound URLs
# accept more than DATA_UPLOAD_MAX_MEMORY_SIZE.
INBOUND_MAX_BYTES = env_int("INBOUND_MAX_BYTES", 41_943_040, minimum=1_048_576)

# --- The SMTP path hears back: bounces, DKIM, tracking --------------------------

# Each copy's envelope sender becomes BOUNCE_ADDRESS with "+TOKEN" naming its
# delivery (VERP); off when unset. The MTA must deliver bounces+anything@ to it.
BOUNCE_ADDRESS = env_str("BOUNCE_ADDRESS", "")
if BOUNCE_ADDRESS and (BOUNCE_ADDRESS.count("@") != 1 or "+" in BOUNCE_ADDRESS or not BOUNCE_ADDRESS.isascii()):
    raise ImproperlyConfigured("BOUNCE_ADDRESS must be one ASCII address without '+', e.g. bounces@example.org")
# Where bounces land, polled by beat: imaps://user:pass@host/INBOX or pop3s://user:pass@host
BOUNCE_MAILBOX_URL = env_str("BOUNCE_MAILBOX_URL", "")
if BOUNCE_MAILBOX_URL:
    BOUNCE_MAILBOX_URL = env_url("BOUNCE_MAILBOX_URL", "", schemes=("imap", "imaps", "pop3", "pop3s"))
BOUNCE_MAILBOX_INTERVAL = env_float("BOUNCE_MAILBOX_INTERVAL", 60.0, minimum=1.0)
# IMAP only: move each recorded message to this folder instead of deleting it.
BOUNCE_MAILBOX_MOVE_TO = env_str("BOUNCE_MAILBOX_MOVE_TO", "")
# The bearer token the raw-message endpoint POST /bounces/receive/ wants; off when unset.
BOUNCE_HTTP_TOKEN = env_str("BOUNCE_HTTP_TOKEN", "")
if BOUNCE_HTTP_TOKEN and len(BOUNCE_HTTP_TOKEN) < 24:
    raise ImproperlyConfigured("BOUNCE_HTTP_TOKEN must be at least 24 characters long")
BOUNCE_MESSAGE_MAX_BYTES = env_int("BOUNCE_MESSAGE_MAX_BYTES", 10_000_000, minimum=10_000)

# DKIM signing on the SMTP path: all three, or none.
DKIM_DOMAIN = env_str("DKIM_DOMAIN", "")
DKIM_SELECTOR = env_str("DKIM_SELECTOR", "")
DKIM_PRIVATE_KEY = env_str("DKIM_PRIVATE_KEY", "").replace("\\n", "\n")
_dkim_key_file = env_str("DKIM_PRIVATE_KEY_FILE", "")
if _dkim_key_file:
    try:
        DKIM_PRIVATE_KEY = Path(_dkim_key_file).read_text()
    except OSError as exc:
        raise ImproperlyConfigured(f"DKIM_PRIVATE_KEY_FILE could not be read: {exc}") from None
if any((DKIM_DOMAIN, DKIM_SELECTOR, DKIM_PRIVATE_KEY)) and not all((DKIM_DOMAIN, DKIM_SELECTOR, DKIM_PRIVATE_KEY)):
    raise ImproperlyConfigured("DKIM_DOMAIN, DKIM_SELECTOR and DKIM_PRIVATE_KEY (or _FILE) must be set together")

CELERY_BEAT_SCHEDULE = {
    "start-scheduled-issues": {"task": "issues.tasks.start_due_issues", "schedule": 15.0},
    "reap-stale-deliveries": {"task": "issues.tasks.reap_stale_deliveries", "schedule": SEND_REAP_INTERVAL},
    "resume-stalled-imports": {
        "task": "subscriptions.import_tasks.resume_stalled_imports",
        "schedule": float(min(60, IMPORT_STALL_SECONDS)),
    },
    "fail-stalled-staff-jobs": {
        "task": "subscriptions.staff_jobs.fail_stalled_staff_jobs",
        "schedule": float(min(30, STAFF_JOB_STALL_SECONDS)),
    },
    "refresh-dashboard": {"task": "issues.tasks.dashboard_refresh", "schedule": float(DASHBOARD_REFRESH_SECONDS)},
    "apply-lost-feedback": {
        "task": "issues.feedback_tasks.sweep_unapplied_events",
        "schedule": FEEDBACK_SWEEP_INTERVAL,
    },
}
if BOUNCE_MAILBOX_URL:
    CELERY_BEAT_SCHEDULE["read-bounce-mailbox"] = {
        "task": "issues.bounces.mailbox_poll",
        "schedule": BOUNCE_MAILBOX_INTERVAL,
    }

# --- Operating: metrics and error reports -----------------------------------------

# /metrics answers only a scrape with "Authorization: Bearer <METRICS_TOKEN>"
# or from an address in METRICS_ALLOWED_IPS; with neither set it is a 404.
METRICS_TOKEN = env_str("METRICS_TOKEN", "")
if METRICS_TOKEN and len(METRICS_TOKEN) < 16:
    raise ImproperlyConfigured("METRICS_TOKEN must be at least 16 characters long")
METRICS_ALLOWED_IPS = env_networks("METRICS_ALLOWED_IPS", [])

# Errors in web requests and Celery tasks go to Sentry when SENTRY_DSN is
# set; nothing is loaded or sent otherwise.
SENTRY_DSN = env_url("SENTRY_DSN", "", schemes=("http", "https"), allow_empty=True)
SENTRY_ENVIRONMENT = env_str("SENTRY_ENVIRONMENT", "production")
SENTRY_TRACES_SAMPLE_RATE = env_float("SENTRY_TRACES_SAMPLE_RATE", 0.0, minimum=0.0, maximum=1.0)
if SENTRY_DSN:
    sentry_init(dsn=SENTRY_DSN, environment=SENTRY_ENVIRONMENT, traces_sample_rate=SENTRY_TRACES_SAMPLE_RATE)

# --- Auth, sessions, security --------------------------------------------------

LOGIN_URL = "/editor/login/"
LOGIN_REDIRECT_URL = "/editor/"
# Failed staff logins are counted per username and client address (django-axes);
# AXES_FAILURE_LIMIT failures lock that pair out for AXES_COOLOFF_TIME.
AUTHENTICATION_BACKENDS = [
    "dwvlist.login_limits.LoginLimitBackend",
    "django.contrib.auth.backends.ModelBackend",
]
AXES_FAILURE_LIMIT = 5
AXES_COOLOFF_TIME = timedelta(minutes=15)
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_RESET_ON_SUCCESS = True
AXES_HTTP_RESPONSE_CODE = 429
# The client's address behind TRUSTED_PROXIES, the same one the other limits use.
AXES_CLIENT_IP_CALLABLE = "dwvlist.clientip.client_ip"
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

_SECURE_DEFAULT = SITE_URL.startswith("https://")
SESSION_COOKIE_SECURE = env_bool("SESSION_COOKIE_SECURE", _SECURE_DEFAULT)
CSRF_COOKIE_SECURE = env_bool("CSRF_COOKIE_SECURE", _SECURE_DEFAULT)
SECURE_SSL_REDIRECT = env_bool("SECURE_SSL_REDIRECT", False)
SECURE_HSTS_SECONDS = env_int("SECURE_HSTS_SECONDS", 0, minimum=0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env_bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", False)
SECURE_HSTS_PRELOAD = env_bool("SECURE_HSTS_PRELOAD", False)
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
if env_bool("BEHIND_TLS_PROXY", False):
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
X_FRAME_OPTIONS = "DENY"  # the mail preview opts in to same-origin framing
SECURE_CROSS_ORIGIN_OPENER_POLICY = "same-origin"
# A Content-Security-Policy on every page (django-csp): scripts only from this
# site, and an inline one only with the request's nonce (<script nonce="{{ request.csp_nonce }}">).
# Style attributes stay allowed (a few templates and the charts use them);
# style sheets only from this site. A response that sets its own policy (the
# editor's mail preview, stricter) keeps it.
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": [SELF],
        "script-src": [SELF, NONCE],
        "style-src": [SELF],
        "style-src-attr": [UNSAFE_INLINE],
        "img-src": [SELF, "data:"],
        "font-src": [SELF],
        "connect-src": [SELF],
        "frame-src": [SELF],
        "frame-ancestors": [NONE],
        "form-action": [SELF],
        "object-src": [NONE],
        "base-uri": [NONE],
    }
}
# Powerful browser features no page here uses (dwvlist/headers.py).
PERMISSIONS_POLICY = (
    "accelerometer=(), autoplay=(), camera=(), display-capture=(), geolocation=(), gyroscope=(), "
    "magnetometer=(), microphone=(), midi=(), payment=(), usb=()"
)

# --- Internationalisation, static files, logging -------------------------------

LANGUAGE_CODE = "en-us"
TIME_ZONE = env_str("TIME_ZONE", "America/Detroit")
USE_I18N = True
USE_TZ = True

# Imports waiting for a worker and finished exports: where every web
# process and worker can reach them. "database" (the default) needs nothing
# shared between hosts; "filesystem" needs FILE_STORAGE_DIR shared by all of
# them; "s3" keeps them in a bucket (django-storages; credentials from the
# usual AWS_* variables).
FILE_STORAGE = env_choice("FILE_STORAGE", "database", ["database", "filesystem", "s3"])
if FILE_STORAGE == "filesystem":
    _files_storage = {
        "BACKEND": "django.core.files.storage.FileSystemStorage",
        "OPTIONS": {"location": env_str("FILE_STORAGE_DIR", str(VAR_DIR / "files"))},
    }
elif FILE_STORAGE == "s3":
    _files_storage = {
        "BACKEND": "storages.backends.s3.S3Storage",
        "OPTIONS": {
            "bucket_name": env_str("FILE_STORAGE_S3_BUCKET", ""),
            "endpoint_url": env_str("FILE_STORAGE_S3_ENDPOINT", "") or None,
            "location": env_str("FILE_STORAGE_S3_PREFIX", "dwvlist"),
            "default_acl": "private",
            "querystring_auth": True,
        },
    }
    if not _files_storage["OPTIONS"]["bucket_name"]:
        raise ImproperlyConfigured("FILE_STORAGE=s3 needs FILE_STORAGE_S3_BUCKET")
else:
    _files_storage = {"BACKEND": "subscriptions.files.DatabaseStorage"}
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
    "files": _files_storage,
}

STATIC_URL = "/static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_ROOT = BASE_DIR / "staticfiles"
WHITENOISE_USE_FINDERS = True  # serves static/ without collectstatic in dev and tests

LOG_LEVEL = env_choice("LOG_LEVEL", "info", ["debug", "info", "warning", "error"]).upper()
# One JSON object per line in production; readable lines when developing.
LOG_FORMAT = env_choice("LOG_FORMAT", "text" if DEBUG else "json", ["json", "text"])
# Readers' addresses appear in logs only as keyed hashes unless this is on (for debugging).
LOG_PERSONAL_DATA = env_bool("LOG_PERSONAL_DATA", False)
LOGGING = logging_config(log_format=LOG_FORMAT, level=LOG_LEVEL)
# flufl.bounce logs every detector it tries, and a traceback for each it
# trips over on a malformed mail, which the bounce intake reports itself.
LOGGING.setdefault("loggers", {})["flufl.bounce"] = {"level": "CRITICAL"}
