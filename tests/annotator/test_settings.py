"""Production refuses to start with DEBUG on or a default secret key; local defaults need no server."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
GOOD_SECRET = "k" * 20 + "a-real-random-production-secret-0123456789"


def _settings_load(**environment: str) -> subprocess.CompletedProcess:
    env = {key: value for key, value in os.environ.items() if key not in {"DEBUG", "SECRET_KEY", "DJANGO_ENV"}}
    env.update(environment, DJANGO_SETTINGS_MODULE="config.settings")
    code = "import django; django.setup(); from django.conf import settings; print(settings.DEBUG)"
    return subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)


@pytest.mark.parametrize(
    ("environment", "complaint"),
    [
        ({"DJANGO_ENV": "production", "DEBUG": "true", "SECRET_KEY": GOOD_SECRET}, "DEBUG"),
        ({"DJANGO_ENV": "production"}, "SECRET_KEY"),
        ({"DEBUG": "false"}, "SECRET_KEY"),
        ({"DJANGO_ENV": "production", "SECRET_KEY": "short"}, "SECRET_KEY"),
    ],
)
def test_production_refuses_to_start_insecurely(environment, complaint):
    result = _settings_load(**environment)
    assert result.returncode != 0
    assert "ImproperlyConfigured" in result.stderr and complaint in result.stderr


def test_production_with_a_real_secret_starts_with_secure_cookies():
    code_env = {"DJANGO_ENV": "production", "SECRET_KEY": GOOD_SECRET, "ALLOWED_HOSTS": "tldr.example.org"}
    env = {**os.environ, **code_env, "DJANGO_SETTINGS_MODULE": "config.settings"}
    env.pop("DEBUG", None)
    code = (
        "import django; django.setup(); from django.conf import settings as s; "
        "print(s.DEBUG, s.SESSION_COOKIE_SECURE, s.CSRF_COOKIE_SECURE, s.SECURE_HSTS_SECONDS > 0)"
    )
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
    assert result.stdout.split() == ["False", "True", "True", "True"], result.stderr


def test_local_defaults_are_sqlite_and_the_embedded_broker():
    env = {
        key: value
        for key, value in os.environ.items()
        if key not in {"DATABASE_URL", "REDIS_URL", "CELERY_BROKER_URL", "DEBUG", "DJANGO_ENV", "SECRET_KEY"}
    }
    env["DJANGO_SETTINGS_MODULE"] = "config.settings"
    code = (
        "import django; django.setup(); from django.conf import settings as s; "
        "print(s.DATABASES['default']['ENGINE'], s.CELERY_BROKER_URL, s.DEBUG)"
    )
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
    assert result.stdout.split() == ["django.db.backends.sqlite3", "filesystem://", "True"], result.stderr


def test_celery_routes_model_work_to_the_gpu_queue():
    from config.celery import app

    assert app.conf.task_acks_late and app.conf.worker_prefetch_multiplier == 1
    for task in ("captions_detect_task", "captions_generate_task", "detections_refresh_task"):
        assert app.conf.task_routes[f"annotator.tasks.{task}"] == {"queue": "gpu"}
    assert {(queue.name, queue.exchange.name, queue.routing_key) for queue in app.conf.task_queues} == {
        ("gpu", "gpu", "gpu"),
        ("default", "default", "default"),
    }


def test_compose_file_has_every_service():
    yaml = pytest.importorskip("yaml")
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    services = compose["services"]
    assert set(services) >= {"postgres", "redis", "web", "worker-gpu", "worker-cpu", "beat"}
    gpu = services["worker-gpu"]
    assert gpu["deploy"]["resources"]["reservations"]["devices"][0]["capabilities"] == ["gpu"]
    assert "-Q gpu" in " ".join(gpu["command"]) and "-c 1" in " ".join(gpu["command"])


def test_web_processes_serve_every_url_without_loading_torch():
    """Model code belongs to the workers: a web process that imported torch would hold 400 MiB more."""
    code = (
        "import sys, django; django.setup(); from django.urls import get_resolver; "
        "get_resolver().url_patterns; import annotator.views, annotator.api.urls; print('torch' in sys.modules)"
    )
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "config.settings"}
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "False"


def _database_options(**environment: str) -> list[str]:
    env = {**os.environ, **environment, "DJANGO_SETTINGS_MODULE": "config.settings"}
    code = (
        "import django; django.setup(); from django.conf import settings as s; "
        "o = s.DATABASES['default'].get('OPTIONS', {}); print(o.get('server_side_binding'), o.get('prepare_threshold'))"
    )
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
    return result.stdout.split() or [result.stderr]


def test_postgresql_binds_on_the_server_and_prepares_repeated_statements_unless_told_not_to():
    postgres = "postgres://postgres@127.0.0.1:5432/tldr_settings"
    assert _database_options(DATABASE_URL=postgres) == ["True", "5"]
    assert _database_options(DATABASE_URL=postgres, DATABASE_PREPARED_STATEMENTS="false") == ["True", "None"]
    assert _database_options(DATABASE_URL="sqlite:///x.sqlite3") == ["None", "None"]


@pytest.mark.django_db
def test_a_statement_run_again_and_again_is_prepared_once_on_postgresql():
    from django.db import connection

    if connection.vendor != "postgresql":
        pytest.skip("prepared statements are PostgreSQL's: set DATABASE_URL=postgres://…")
    with connection.cursor() as cursor:
        for value in range(8):
            cursor.execute("SELECT %s::int + 1 AS prepared_probe", [value])
            assert cursor.fetchone() == (value + 1,)
        cursor.execute("SELECT count(*) FROM pg_prepared_statements WHERE statement LIKE %s", ["%prepared_probe%"])
        assert cursor.fetchone() == (1,)
