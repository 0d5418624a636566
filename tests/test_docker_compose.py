"""docker-compose.yml validates with the Compose CLI, and refuses to start without a secret key."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _compose() -> list[str] | None:
    """`docker compose` (the plugin) or the standalone `docker-compose`, whichever is installed."""
    if shutil.which("docker"):
        plugin = subprocess.run(["docker", "compose", "version"], capture_output=True, timeout=30)
        if plugin.returncode == 0:
            return ["docker", "compose"]
    if shutil.which("docker-compose"):
        return ["docker-compose"]
    return None


COMPOSE = _compose()
pytestmark = pytest.mark.skipif(COMPOSE is None, reason="no Compose CLI (docker compose or docker-compose)")


def _config(**environment: str) -> subprocess.CompletedProcess:
    env = {key: value for key, value in os.environ.items() if key != "SECRET_KEY"} | environment
    return subprocess.run(
        [*COMPOSE, "-f", "docker-compose.yml", "config", "-q"], cwd=ROOT, env=env, capture_output=True, text=True
    )


def test_the_production_layout_validates():
    result = _config(SECRET_KEY="k" * 60)
    assert result.returncode == 0, result.stderr


def test_without_a_secret_key_compose_says_what_to_set():
    result = _config()
    assert result.returncode != 0
    assert "SECRET_KEY" in result.stderr
