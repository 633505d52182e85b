"""A small GeoDjango-style project the Django tests run against.

The database comes from ``TEST_DJANGO_DATABASE_URL`` (the tests create one per run), written
the way a project spells it for psycopg2 or psycopg 3: geotasks derives its own URL from it.
"""

import os
from urllib.parse import urlsplit

_database = urlsplit(
    os.environ.get("TEST_DJANGO_DATABASE_URL", "postgresql://postgres@127.0.0.1/test")
)

SECRET_KEY = "geotasks-tests-only"
DEBUG = False
ALLOWED_HOSTS = ["127.0.0.1", "localhost", "testserver"]
USE_TZ = True
ROOT_URLCONF = "geoproject.urls"
STATIC_URL = "/static/"
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "geotasks.contrib.django",
    "parcels",
]
try:
    import django_tasks  # noqa: F401  (Django 5.2: the Tasks backport)
except ImportError:
    pass
else:
    INSTALLED_APPS.append("django_tasks")

MIDDLEWARE = [
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
]

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ]
        },
    }
]

DATABASES = {
    "default": {
        # The tests try another engine to see geotasks refuse it.
        "ENGINE": os.environ.get("TEST_DJANGO_ENGINE", "django.db.backends.postgresql"),
        "NAME": _database.path.lstrip("/"),
        "USER": _database.username or "",
        "PASSWORD": _database.password or "",
        "HOST": _database.hostname or "",
        "PORT": _database.port or "",
    }
}

GEOTASKS = {
    "RESULT_TTL_S": 3600,
    "MAX_DELIVERIES": 3,
}

TASKS = {
    "default": {
        "BACKEND": "geotasks.contrib.django.GeotasksBackend",
        "QUEUES": ["default", "mail"],
        "OPTIONS": {
            "parcels.tasks.count_to": {"rate_limit": "2/s"},
            "parcels.tasks.divide": {"max_retries": 0},
        },
    }
}
