"""Fixtures of the annotator tests. The database is whatever DATABASE_URL says (PostgreSQL in CI,
SQLite locally); files go to a temporary MEDIA_ROOT; Celery work enqueued on commit is not sent
unless a test asks for it."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import pytest
from django.db import connection
from django.utils import timezone
from rest_framework.test import APIClient

from tests.annotator.factories import AdminFactory, AnnotatorFactory, ProjectFactory


@pytest.fixture(autouse=True)
def _test_settings(settings, tmp_path: Path) -> None:
    settings.MEDIA_ROOT = str(tmp_path / "media")
    # Real password hashing costs a third of a second per user; tests make hundreds of users.
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture
def now() -> datetime:
    return timezone.now()


@pytest.fixture
def annotator(db):
    return AnnotatorFactory()


@pytest.fixture
def admin_user(db):
    return AdminFactory()


@pytest.fixture
def project(annotator):
    return ProjectFactory(members=[annotator])


@pytest.fixture
def api() -> APIClient:
    return APIClient()


def on_postgres() -> bool:
    return connection.vendor == "postgresql"
