"""Model versions: registering trained models and making one of each kind the active one."""

from __future__ import annotations

from django.db import transaction

from annotator.models import ModelVersion
from annotator.services.detection import detections_refresh_enqueue


def model_version_register(*, kind: str, name: str, path: str, metrics: dict | None = None) -> ModelVersion:
    """A candidate version of a trained model folder (the same name again updates it)."""
    version, _ = ModelVersion.objects.update_or_create(
        kind=kind, name=name, defaults={"path": path, "metrics": metrics or {}}
    )
    return version


def model_version_activate(*, model_version: ModelVersion) -> ModelVersion:
    """Make `model_version` the active one of its kind and retire the previous one.

    A new reward model re-scores every caption no one has finished yet, so annotators see its
    highlights rather than the old model's.
    """
    with transaction.atomic():
        previous = (
            ModelVersion.objects.select_for_update()
            .filter(kind=model_version.kind, status=ModelVersion.Status.ACTIVE)
            .exclude(pk=model_version.pk)
        )
        changed = previous.update(status=ModelVersion.Status.RETIRED) > 0 or (
            model_version.status != ModelVersion.Status.ACTIVE
        )
        model_version.status = ModelVersion.Status.ACTIVE
        model_version.save(update_fields=["status"])
        if changed and model_version.kind == ModelVersion.Kind.REWARD:
            detections_refresh_enqueue(model_version=model_version)
    return model_version
