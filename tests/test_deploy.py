"""The deployment files agree with the code: compose services, the image's install line, production mode."""

import os
import re
import secrets
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
SETTINGS_SOURCE = (ROOT / "config" / "settings.py").read_text()
# Every variable config/settings.py reads; subprocesses start without the test run's values for them.
SETTINGS_VARIABLES = sorted(set(re.findall(r"\benv(?:_bool|_list)?\(\s*\"([A-Z][A-Z0-9_]*)\"", SETTINGS_SOURCE)))
# Set by the test run itself (tests/e2e/conftest.py, .ci/run), and rightly an error under check --deploy.
TEST_ONLY_VARIABLES = {"DJANGO_ALLOW_ASYNC_UNSAFE"}
APP_SERVICES = ["migrate", "web", "worker", "beat"]


def command_text(command: str | list[str]) -> str:
    return command if isinstance(command, str) else " ".join(command)


def production_env(tmp_path: Path, **overrides: str | None) -> dict[str, str]:
    """The documented production environment on a throwaway SQLite file; ``None`` removes a variable."""
    removed = {*SETTINGS_VARIABLES, *TEST_ONLY_VARIABLES}
    env = {name: value for name, value in os.environ.items() if name not in removed}
    env.update(
        DJANGO_SETTINGS_MODULE="config.settings",
        DJANGO_ENV="production",
        SECRET_KEY=secrets.token_urlsafe(45),  # 60 characters
        ALLOWED_HOSTS="goalpost.example.com",
        DATABASE_URL=f"sqlite:///{tmp_path / 'deploy.sqlite3'}",
    )
    for name, value in overrides.items():
        if value is None:
            env.pop(name, None)
        else:
            env[name] = value
    return env


def run_python(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120, check=False
    )


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())


def test_settings_variables_found_by_the_scan():
    # Guards the regex: if it stopped matching, the README and isolation tests below would pass vacuously.
    assert {"DJANGO_ENV", "SECRET_KEY", "ALLOWED_HOSTS", "DATABASE_URL", "REDIS_URL"} <= set(SETTINGS_VARIABLES)


def test_readme_documents_every_settings_variable():
    readme = (ROOT / "README.md").read_text()
    undocumented = [name for name in SETTINGS_VARIABLES if f"| `{name}` |" not in readme]
    assert undocumented == []


def test_compose_names_every_service(compose):
    assert set(compose["services"]) == {"db", "redis", "migrate", "web", "worker", "beat"}


def test_compose_database_is_postgres_16_with_healthcheck(compose):
    db = compose["services"]["db"]
    assert db["image"] == "postgres:16"
    assert "pg_isready" in command_text(db["healthcheck"]["test"])


def test_compose_redis_persists_with_append_only_file(compose):
    redis = compose["services"]["redis"]
    assert redis["image"].startswith("redis:7")
    command = command_text(redis["command"])
    assert "--appendonly yes" in command
    assert "--appendfsync everysec" in command
    assert "ping" in command_text(redis["healthcheck"]["test"])


def test_compose_migrates_once_before_the_app_starts(compose):
    services = compose["services"]
    assert command_text(services["migrate"]["command"]) == "python manage.py migrate --noinput"
    assert services["migrate"]["depends_on"]["db"] == {"condition": "service_healthy"}
    for name in ["web", "worker", "beat"]:
        assert services[name]["depends_on"]["migrate"] == {"condition": "service_completed_successfully"}


def test_compose_web_worker_and_beat_commands(compose):
    services = compose["services"]
    assert command_text(services["web"]["command"]) == "gunicorn -c config/gunicorn.py config.wsgi"
    assert "http://127.0.0.1:8000/" in command_text(services["web"]["healthcheck"]["test"])
    assert command_text(services["worker"]["command"]).startswith("celery -A config worker")
    assert command_text(services["beat"]["command"]).startswith("celery -A config beat")


def test_compose_app_services_share_the_production_environment(compose):
    environments = [compose["services"][name]["environment"] for name in APP_SERVICES]
    assert all(environment == environments[0] for environment in environments)
    environment = environments[0]
    assert environment["DJANGO_ENV"] == "production"
    assert environment["SECRET_KEY"] == "${SECRET_KEY:?set SECRET_KEY}"
    assert environment["DATABASE_URL"].startswith("postgres://")
    assert environment["REDIS_URL"] == "redis://redis:6379/0"
    assert environment["CELERY_BROKER_URL"] == "redis://redis:6379/1"
    assert environment["ALLOWED_HOSTS"]


def pip_lock_installs(text: str) -> list[str]:
    return re.findall(r"pip install ([^\n\\&]*-r requirements\.lock)", text)


def test_dockerfile_installs_from_the_lock_like_the_makefile():
    makefile_installs = pip_lock_installs((ROOT / "Makefile").read_text())
    dockerfile_installs = pip_lock_installs((ROOT / "Dockerfile").read_text())
    assert makefile_installs == ["--quiet -r requirements.lock"]
    assert dockerfile_installs == makefile_installs


def test_dockerfile_runs_gunicorn_as_an_unprivileged_user():
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert re.search(r"^FROM python:3\.11-slim$", dockerfile, re.MULTILINE)
    users = re.findall(r"^USER (\S+)$", dockerfile, re.MULTILINE)
    assert users
    assert users[-1] not in {"root", "0"}
    assert re.search(r'^CMD \["gunicorn", "-c", "config/gunicorn\.py", "config\.wsgi"\]$', dockerfile, re.MULTILINE)
    assert "DJANGO_ENV=production" in dockerfile
    assert "manage.py collectstatic --noinput" in dockerfile


def test_dockerignore_keeps_local_state_out_of_the_image():
    ignored = set((ROOT / ".dockerignore").read_text().split())
    assert {".git", ".venv", "db.sqlite3*", "staticfiles", ".env"} <= ignored


def test_ci_script_is_strict_and_runs_the_readme_test_command():
    script = ROOT / ".ci" / "run"
    text = script.read_text()
    assert os.access(script, os.X_OK)
    assert "set -euo pipefail" in text
    assert re.search(r"\bmake test-fast$", text, re.MULTILINE)
    assert re.search(r"\bmake test$", text, re.MULTILINE)
    assert "|| true" not in text


@pytest.mark.parametrize("secret_key", [None, "", "too-short-to-be-a-real-key"])
def test_production_refuses_to_start_without_a_real_secret_key(tmp_path, secret_key):
    result = run_python(["-c", "import django; django.setup()"], production_env(tmp_path, SECRET_KEY=secret_key))
    assert result.returncode != 0
    last_line = result.stderr.strip().splitlines()[-1]
    assert last_line.startswith("django.core.exceptions.ImproperlyConfigured: SECRET_KEY ")


def test_production_refuses_to_start_without_allowed_hosts(tmp_path):
    result = run_python(["-c", "import django; django.setup()"], production_env(tmp_path, ALLOWED_HOSTS=None))
    assert result.returncode != 0
    last_line = result.stderr.strip().splitlines()[-1]
    assert last_line.startswith("django.core.exceptions.ImproperlyConfigured: ALLOWED_HOSTS ")


def test_production_starts_with_the_documented_environment(tmp_path):
    result = run_python(
        ["-c", "import django; django.setup(); from django.conf import settings; print(settings.DEBUG)"],
        production_env(tmp_path),
    )
    assert (result.returncode, result.stdout.strip()) == (0, "False"), result.stderr


def test_deploy_checks_pass_in_production(tmp_path):
    result = run_python(["manage.py", "check", "--deploy", "--fail-level", "WARNING"], production_env(tmp_path))
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.strip() == "System check identified no issues (0 silenced)."


@pytest.mark.parametrize(("value", "expected"), [(None, "True"), ("0", "False"), ("1", "True")])
def test_the_postback_hot_path_can_be_switched_off_from_the_environment(tmp_path, value, expected):
    # Behind PgBouncer in transaction mode, prepared statements vanish between transactions: operators turn the
    # hot path off without touching code.
    result = run_python(
        [
            "-c",
            "import django; django.setup(); from django.conf import settings; print(settings.TRACKING_SQL_HOT_PATH)",
        ],
        production_env(tmp_path, TRACKING_SQL_HOT_PATH=value),
    )
    assert (result.returncode, result.stdout.strip()) == (0, expected), result.stderr


def gunicorn_settings(monkeypatch, **environment) -> dict:
    """config/gunicorn.py's settings as gunicorn reads them (it executes the file) in ``environment``."""
    for name in ("WEB_CONCURRENCY", "GUNICORN_WORKER_CLASS", "GUNICORN_THREADS", "GUNICORN_BIND"):
        monkeypatch.delenv(name, raising=False)
    for name, value in environment.items():
        monkeypatch.setenv(name, value)
    values: dict = {}
    exec((ROOT / "config" / "gunicorn.py").read_text(), values)  # noqa: S102  (our own config file)
    return values


def test_gunicorn_defaults_to_sync_workers_two_per_cpu_plus_one(monkeypatch):
    values = gunicorn_settings(monkeypatch)

    assert (values["worker_class"], values["threads"]) == ("sync", 1)
    assert values["workers"] == 2 * os.cpu_count() + 1
    assert (values["bind"], values["accesslog"], values["control_socket_disable"]) == ("0.0.0.0:8000", "-", True)


def test_gunicorn_settings_come_from_the_environment(monkeypatch):
    values = gunicorn_settings(
        monkeypatch, WEB_CONCURRENCY="3", GUNICORN_WORKER_CLASS="gthread", GUNICORN_THREADS="8", GUNICORN_BIND=":9000"
    )

    assert (values["workers"], values["worker_class"], values["threads"], values["bind"]) == (3, "gthread", 8, ":9000")
