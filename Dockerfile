# Goalpost's one image: gunicorn serves it, and the same image runs migrations, the Celery worker and beat
# (see docker-compose.yml). Built from the same lock file as `make install`, so it runs what CI tested.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    WEB_CONCURRENCY=3

WORKDIR /app

# The same two pip lines as the Makefile's install target. The lock is copied alone first so that a code
# change does not reinstall every dependency.
COPY requirements.lock ./
RUN python -m pip install --quiet --upgrade pip \
    && pip install --quiet -r requirements.lock

COPY . .

# collectstatic runs in production mode so whitenoise writes its hashed, compressed manifest. The key is
# random, used only by this build step and never stored in the image; the real one comes at run time.
RUN DJANGO_ENV=production \
    ALLOWED_HOSTS=build.invalid \
    SECRET_KEY="$(python -c 'import secrets; print(secrets.token_urlsafe(60))')" \
    python manage.py collectstatic --noinput

# Run as an unprivileged user; the code and collected static files stay owned by root, read-only to it.
RUN useradd --system --uid 10001 --no-create-home --home-dir /app --shell /usr/sbin/nologin goalpost
USER goalpost

EXPOSE 8000
# config/gunicorn.py is the one server configuration (workers, worker class, access log to stdout, no control
# socket, heartbeat files in memory), the same that bench/click.py and bench/postback.py measure.
CMD ["gunicorn", "-c", "config/gunicorn.py", "config.wsgi"]
