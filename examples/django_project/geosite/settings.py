"""A minimal GeoDjango-style project whose background work runs on geotasks.

The database is Django's own; geotasks uses it for its queue, results and job statuses.
"""

import os

SECRET_KEY = os.environ.get("DJANGO_SECRET_KEY", "change-me")
DEBUG = True
ALLOWED_HOSTS = ["127.0.0.1", "localhost"]
USE_TZ = True
ROOT_URLCONF = "geosite.urls"
STATIC_URL = "/static/"
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "geotasks.contrib.django",  # settings, `manage.py geotasks`, the schema, the admin
    "maps",  # maps/tasks.py is found by the worker
]

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
        "ENGINE": "django.db.backends.postgresql",
        "NAME": os.environ.get("PGDATABASE", "geosite"),
        "USER": os.environ.get("PGUSER", "postgres"),
        "HOST": os.environ.get("PGHOST", "127.0.0.1"),
        "PORT": os.environ.get("PGPORT", "5432"),
    }
}

# Any GEOTASKS_* setting, without its prefix; a GEOTASKS_* environment variable wins.
GEOTASKS = {
    "DATA_DIR": os.environ.get(
        "GEOTASKS_DATA_DIR", os.path.join(os.path.dirname(__file__), "../../../sample_data")
    ),
    "RESULT_TTL_S": 3600,
}

try:  # Django 6, or Django 5.2 with the django-tasks backport
    from django.tasks import task  # noqa: F401
except ImportError:
    try:
        import django_tasks  # noqa: F401
    except ImportError:
        pass
    else:
        INSTALLED_APPS.append("django_tasks")
TASKS = {
    "default": {
        "BACKEND": "geotasks.contrib.django.GeotasksBackend",
        "OPTIONS": {"maps.tasks.email_area_report": {"rate_limit": "10/m"}},
    }
}
