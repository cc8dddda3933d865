"""Settings for the sync server, read from the environment (and `.env` beside manage.py).

Every variable is listed with its meaning in `.env.example`.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import environ
from django.core.exceptions import ImproperlyConfigured
from django.utils.translation import gettext_lazy as _

from syncsite.keys import development_file_value

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = Path(os.environ.get("VAR_DIR", BASE_DIR / "var"))

env = environ.Env()
environ.Env.read_env(BASE_DIR / ".env", overwrite=False)

logger = logging.getLogger("syncsite")

DEBUG = env.bool("DEBUG", default=False)

SECRET_KEY = env.str("SECRET_KEY", default="")
if not SECRET_KEY:
    if not DEBUG:
        raise ImproperlyConfigured(
            "SECRET_KEY is not set. Set SECRET_KEY to a long random value "
            "(or DEBUG=true for a development server)."
        )
    SECRET_KEY = development_file_value(VAR_DIR / "development-secret-key", "secret key")

ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", default=["127.0.0.1", "localhost"] if DEBUG else [])
CSRF_TRUSTED_ORIGINS = env.list("CSRF_TRUSTED_ORIGINS", default=[])

INSTALLED_APPS = [
    "syncsite.admin_site.SyncAdminConfig",   # django.contrib.admin, its index ordered
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django_q",
    "syncsite",
    "profiles",
    "console",     # the administrator's screens for what profiles configures
    "crm",
    "engine",
    "portal",
    "security",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "security.csp.ContentSecurityPolicyMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.locale.LocaleMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "profiles.audit.AuditActorMiddleware",
]

ROOT_URLCONF = "syncsite.urls"
WSGI_APPLICATION = "syncsite.wsgi.application"

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

DATABASES = {
    "default": env.db_url("DATABASE_URL", default=f"sqlite:///{VAR_DIR / 'db.sqlite3'}"),
}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # The web server and the worker processes write to one file: wait for the write lock
    # instead of failing with "database is locked", and take it at BEGIN so a reader that
    # later writes cannot deadlock. With WAL, synchronous=NORMAL syncs at checkpoints rather
    # than at every commit: a crashed process loses nothing, and a power cut can only roll
    # back the last commits as a whole (sync states with the rows they cover, so the next
    # run redoes that work, and identity stamps keep it from doubling anything).
    DATABASES["default"].setdefault("OPTIONS", {}).update(
        {"timeout": 20, "transaction_mode": "IMMEDIATE",
         "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;"}
    )
else:
    # A server database: each worker keeps its connection from task to task (django-q2
    # closes connections older than this before every task; with Django's default of 0 each
    # of 20,000 scheduled runs opened a new PostgreSQL connection, a server process each).
    # Checked before reuse, so a restarted database costs a reconnect, not a failed run.
    DATABASES["default"].setdefault("CONN_MAX_AGE", env.int("DB_CONN_MAX_AGE", default=300))
    DATABASES["default"]["CONN_HEALTH_CHECKS"] = True

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

LANGUAGE_CODE = "en"
LANGUAGES = [("en", "English"), ("cs", "Čeština")]
LOCALE_PATHS = [BASE_DIR / "locale"]
TIME_ZONE = env.str("TIME_ZONE", default="Europe/Prague")
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = env.path("STATIC_ROOT", default=VAR_DIR / "static")

# --- HTTPS and browser protections (docs/security.md) ------------------------------------
# Off with DEBUG, so that `make run` works on plain http://localhost. In production the site
# is behind nginx with TLS; gunicorn takes the scheme from nginx's X-Forwarded-Proto.
_HTTPS_ONLY = not DEBUG
SECURE_SSL_REDIRECT = _HTTPS_ONLY
# Probes may ask gunicorn directly over plain http on the machine itself.
SECURE_REDIRECT_EXEMPT = [r"^healthz$", r"^metrics$"]
SESSION_COOKIE_SECURE = _HTTPS_ONLY
CSRF_COOKIE_SECURE = _HTTPS_ONLY
SECURE_HSTS_SECONDS = 31_536_000 if _HTTPS_ONLY else 0
SECURE_HSTS_INCLUDE_SUBDOMAINS = _HTTPS_ONLY
# Preloading commits the whole registrable domain to HTTPS in every browser, a decision for
# the domain's owner, not for this server: not requested, and its check silenced.
SECURE_HSTS_PRELOAD = False
SILENCED_SYSTEM_CHECKS = ["security.W021"]
SESSION_COOKIE_HTTPONLY = True
X_FRAME_OPTIONS = "DENY"
SECURE_REFERRER_POLICY = "same-origin"
SECURE_CROSS_ORIGIN_OPENER_POLICY = "same-origin"
# Proxies whose X-Forwarded-For names the real client (sign-in throttling counts by client
# address). Default: nginx on this machine, as docs/deploy.md installs it.
TRUSTED_PROXIES: list[str] = env.list("TRUSTED_PROXIES", default=["127.0.0.1", "::1"])

# Users sign in on the user pages; the admin keeps its own sign-in page.
LOGIN_URL = "portal:login"
LOGIN_REDIRECT_URL = "portal:dashboard"
LOGOUT_REDIRECT_URL = "portal:login"

# --- Secrets at rest -------------------------------------------------------------------
# Comma-separated Fernet keys: the first encrypts, every one decrypts (rotation).
ENCRYPTION_KEYS: list[str] = env.list("ENCRYPTION_KEYS", default=[])
if not ENCRYPTION_KEYS and DEBUG:
    ENCRYPTION_KEYS = [
        development_file_value(VAR_DIR / "development-encryption-key", "encryption key")
    ]

# --- Attachment share ------------------------------------------------------------------
# Folders under which an attachment directory may be chosen; nothing is written elsewhere.
ATTACHMENT_ROOTS: list[str] = env.list("ATTACHMENT_ROOTS", default=[])

# --- Mailboxes ---------------------------------------------------------------------------
# How long one sync run may wait in total when Exchange asks it to slow down (throttling);
# past that the run stops and the next one goes on where it stopped.
MAILBOX_THROTTLE_BUDGET = env.float("MAILBOX_THROTTLE_BUDGET", default=300.0)
# Loopback and private networks (CIDR) the server may connect to for a connection, e.g. the
# on-premises Exchange servers' subnet. Empty: public addresses only. Link-local, multicast
# and reserved addresses are refused whatever this says (security/outbound.py).
MAILBOX_ALLOWED_NETWORKS: list[str] = env.list("MAILBOX_ALLOWED_NETWORKS", default=[])

# --- CRMs ------------------------------------------------------------------------------
# The kinds of CRM an organization's CRM connection may name: kind -> dotted path of a
# CrmBackend subclass (engine/crmstore/registry.py). "builtin" is every organization's
# default and stays listed; "raynet" is Raynet CRM over its REST API (docs/raynet.md).
SYNC_CRM_KINDS: dict[str, str] = {"builtin": "engine.crmstore.builtin.BuiltinCrm",
                                  "raynet": "engine.crmstore.raynet.RaynetCrm"}
# The share of a Raynet instance's daily request budget no run spends (kept for "Test
# connection" and the instance's other integrations): a run that would eat into it stops.
RAYNET_BUDGET_RESERVE = env.float("RAYNET_BUDGET_RESERVE", default=0.05)
# The demo (`make run`): `serve --demo-mailbox` runs the Raynet simulator too, and
# `setup_demo` makes an organization syncing with it (profiles/demo_raynet.py).
SYNC_DEMO = env.bool("SYNC_DEMO", default=False)

# --- Background work (django-q2) -------------------------------------------------------
REDIS_URL = env.str("REDIS_URL", default="")
Q_CLUSTER: dict = {
    # The queue's name (and the salt of its signed tasks): every web process and worker of one
    # installation uses the same; installations sharing a Redis server need different ones.
    "name": env.str("Q_NAME", default="crm_sync"),
    "workers": env.int("Q_WORKERS", default=2),
    # A sync task may run long; the broker redelivers a task only after `retry` seconds,
    # which must exceed `timeout` or a running sync would be started a second time.
    "timeout": 900,
    "retry": 1200,
    "max_attempts": 1,
    "ack_failures": True,
    # Missed schedules are not replayed after downtime: the dispatcher finds due work itself.
    "catch_up": False,
    "queue_limit": 4,
    "bulk": 1,
    "save_limit": 100,
    "recycle": 200,
    "max_rss": 400_000,
    # The admin index's name for django-q2's tables, in the reader's language.
    "label": _("Background tasks"),
}
if REDIS_URL:
    Q_CLUSTER["redis"] = REDIS_URL
else:
    Q_CLUSTER["orm"] = "default"
# How long a sync run's lease on its (profile, agenda) lasts without renewal (the run renews
# it after every batch): a worker that dies mid-run blocks that agenda this long at most.
SYNC_LEASE_SECONDS = env.int("SYNC_LEASE_SECONDS", default=300)

# --- Operations ------------------------------------------------------------------------
# An agenda failing this many times in a row e-mails its organization's administrators
# (rejected credentials: at once); one message per incident, one when it recovers.
ALERT_AFTER_FAILURES = env.int("ALERT_AFTER_FAILURES", default=3)
# A bearer token that opens /metrics to a Prometheus scraper (staff users need none).
METRICS_TOKEN = env.str("METRICS_TOKEN", default="")
# This server's address as the internet reaches it (https://sync.example.com), for the
# webhooks a CRM posts its changes to (Raynet). Empty: no webhooks, CRM changes wait for the
# interval.
PUBLIC_BASE_URL = env.str("PUBLIC_BASE_URL", default="")

# --- E-mail for alerts -----------------------------------------------------------------
EMAIL_CONFIG = env.email_url("EMAIL_URL", default="consolemail://")
vars().update(EMAIL_CONFIG)
DEFAULT_FROM_EMAIL = env.str("DEFAULT_FROM_EMAIL", default="sync-server@localhost")
SERVER_EMAIL = DEFAULT_FROM_EMAIL

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": env.str("LOG_LEVEL", default="INFO")},
    "loggers": {"django.db.backends": {"level": "WARNING"},
                # The SMB client logs every request it sends at INFO.
                "smbprotocol": {"level": "WARNING"}, "smbclient": {"level": "WARNING"}},
}
