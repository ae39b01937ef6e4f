"""gunicorn's settings for Goalpost's web processes: the image, docker-compose and bench/ all start gunicorn with
``gunicorn -c config/gunicorn.py config.wsgi``, so what the benches measure is what production runs.

Every value can be changed from the environment; docs/tracking.md has the measurements behind the defaults.
"""

import os

bind = os.environ.get("GUNICORN_BIND", "0.0.0.0:8000")
# gunicorn's own default reads WEB_CONCURRENCY too, but falls back to one worker.
workers = int(os.environ.get("WEB_CONCURRENCY") or 2 * (os.cpu_count() or 1) + 1)
worker_class = os.environ.get("GUNICORN_WORKER_CLASS", "sync")
threads = int(os.environ.get("GUNICORN_THREADS") or 1)
backlog = int(os.environ.get("GUNICORN_BACKLOG") or 2048)
accesslog = os.environ.get("GUNICORN_ACCESS_LOG", "-") or None  # "-" is stdout, empty is off
# gunicornc is not used in a container, and its socket would need a writable home directory.
control_socket_disable = True
# Heartbeat files in memory, not on the container's disk.
worker_tmp_dir = os.environ.get(
    "GUNICORN_WORKER_TMP_DIR",
    "/dev/shm" if os.path.isdir("/dev/shm") else None,  # noqa: S108  (memory, not a shared temp folder)
)
