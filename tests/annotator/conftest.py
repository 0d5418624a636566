"""Fixtures of the annotator tests. The database is whatever DATABASE_URL says (PostgreSQL in CI,
SQLite locally); files go to a temporary MEDIA_ROOT; Celery work enqueued on commit is not sent
unless a test asks for it. Model tests share micro models (a seconds-trained captioner and an
untrained TLDR head), built once per session and linked into each test's own models folder."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import pytest
from django.db import connection
from django.utils import timezone
from rest_framework.test import APIClient

from annotator.models import ModelVersion
from annotator.services.model_versions import model_version_activate, model_version_register
from tests.annotator.factories import AdminFactory, AnnotatorFactory, ProjectFactory

CAPTIONER, REWARD_MODEL = "captioner-v0", "tldr-v0"  # the bootstrap's names (reward.bootstrap)


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


@pytest.fixture(scope="session")
def micro_models(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A seconds-trained captioner and an untrained TLDR head on it, built once for the session."""
    from reward.model import RewardConfig, TokenRewardModel
    from reward.vlm import vlm_load
    from shapeworld.pretrain import PretrainConfig, captioner_pretrain

    root = tmp_path_factory.mktemp("micro-models")
    captioner_pretrain(PretrainConfig(minutes=0.05), root / CAPTIONER)
    vlm, _ = vlm_load(str(root / CAPTIONER))
    TokenRewardModel.build(vlm, RewardConfig(), base_model=str(root / CAPTIONER)).save(root / REWARD_MODEL)
    return root


@pytest.fixture
def models_dir(micro_models: Path, tmp_path: Path, settings) -> Path:
    """This test's TLDR_MODELS_DIR: links to the session's models, so a test may delete one of its own."""
    folder = tmp_path / "models"
    folder.mkdir()
    for name in (CAPTIONER, REWARD_MODEL):
        (folder / name).symlink_to(micro_models / name, target_is_directory=True)
    settings.TLDR_MODELS_DIR = str(folder)
    return folder


@pytest.fixture
def active_models(models_dir) -> dict[str, ModelVersion]:
    return {
        kind: model_version_activate(model_version=model_version_register(kind=kind, name=name, path=name))
        for kind, name in ((ModelVersion.Kind.POLICY, CAPTIONER), (ModelVersion.Kind.REWARD, REWARD_MODEL))
    }
