"""WSGI entry point for gunicorn: the click path (/c/, /i/) in front of Django.

Clicks skip Django's middleware stack (sessions, CSRF, auth, tenancy), which they do not need: the redirect
then costs no more than an empty Django view (bench/click.py measures it).
"""

import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

django_application = get_wsgi_application()

from tracking.clickpath import ClickDispatcher  # noqa: E402  (needs the app registry loaded above)

application = ClickDispatcher(django_application)
