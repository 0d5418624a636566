"""Reads of model versions."""

from __future__ import annotations

from pathlib import Path

from django.conf import settings

from annotator.models import ModelVersion


class ModelNotActive(Exception):
    """No active model of a kind; the message says how to get one."""


def model_version_active(*, kind: str) -> ModelVersion:
    version = ModelVersion.objects.filter(kind=kind, status=ModelVersion.Status.ACTIVE).first()
    if version is None:
        raise ModelNotActive(
            f"no active {kind} model: run `python -m reward bootstrap` and `python manage.py seed_demo`, "
            f"or activate a {kind} model version in the admin"
        )
    return version


def model_versions_active_by_kind() -> list[tuple[str, ModelVersion | None]]:
    """(kind's label, its active version or None) for the reward model and the captioner, in that order."""
    active = {version.kind: version for version in ModelVersion.objects.filter(status=ModelVersion.Status.ACTIVE)}
    return [(label, active.get(kind)) for kind, label in ModelVersion.Kind.choices]


def model_folder(path: str) -> Path:
    """A ModelVersion's folder: relative paths live under TLDR_MODELS_DIR."""
    folder = Path(path)
    return folder if folder.is_absolute() else Path(settings.TLDR_MODELS_DIR) / folder


def model_version_active_or_none(*, kind: str) -> ModelVersion | None:
    return ModelVersion.objects.filter(kind=kind, status=ModelVersion.Status.ACTIVE).first()
