"""WSGI entry point for gunicorn: the tracking hot paths (/c/, /i/, /postback/) in front of Django.

Clicks and postbacks skip Django's middleware stack (sessions, CSRF, auth, tenancy), which they do not
need (bench/click.py and bench/postback.py measure them against an empty Django view).
"""

import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

django_application = get_wsgi_application()

from tracking.clickpath import TrackingDispatcher  # noqa: E402  (needs the app registry loaded above)

application = TrackingDispatcher(django_application)
