"""The demo project: shapeworld scenes, captioned by the default captioner and scored by TLDR."""

from __future__ import annotations

import hashlib
import io
import random

from django.core.files.uploadedfile import SimpleUploadedFile

from annotator.models import Image, ModelVersion, Project
from annotator.services.captioning import captions_generate_for_images
from annotator.services.detection import detections_refresh_enqueue
from annotator.services.imports import images_import
from annotator.services.model_versions import model_version_activate, model_version_register
from reward.bootstrap import CAPTIONER, REWARD_MODEL
from reward.model import MANIFEST, reward_model_manifest
from shapeworld.render import scene_render
from shapeworld.scene import scene_sample, scene_to_dict

DEMO_PROJECT = "Shapeworld demo"


def default_models_register(*, models_dir) -> None:
    """Register and activate the bootstrap's captioner and reward model, or say how to build them.

    The reward model is registered with the metrics its manifest records (its training run, threshold
    included). A reward model rebuilt under the same name (`bootstrap --force`, a longer bootstrap) has
    other metrics: the captions nobody has corrected yet are then re-scored, as for any newly active
    reward model, so the demo never shows the highlights of weights that are gone.
    """
    if not (models_dir / CAPTIONER / "config.json").is_file() or not (models_dir / REWARD_MODEL / MANIFEST).is_file():
        raise FileNotFoundError(
            f"no default models under {models_dir}: run `python -m reward --models-dir {models_dir} bootstrap` first"
        )
    model_version_activate(
        model_version=model_version_register(kind=ModelVersion.Kind.POLICY, name=CAPTIONER, path=CAPTIONER)
    )
    metrics = reward_model_manifest(models_dir / REWARD_MODEL).get("metrics", {})
    registered = ModelVersion.objects.filter(
        kind=ModelVersion.Kind.REWARD, name=REWARD_MODEL, status=ModelVersion.Status.ACTIVE
    ).first()
    reward = model_version_activate(
        model_version=model_version_register(
            kind=ModelVersion.Kind.REWARD, name=REWARD_MODEL, path=REWARD_MODEL, metrics=metrics
        )
    )
    # Activating a version that was already active re-scores nothing by itself.
    if registered is not None and registered.metrics != reward.metrics:
        detections_refresh_enqueue(model_version=reward)


def demo_project_seed(*, n_images: int, seed: int = 0) -> Project:
    """A project of `n_images` rendered scenes whose captions the active models wrote and scored."""
    project, _ = Project.objects.get_or_create(
        name=DEMO_PROJECT, defaults={"description": "synthetic scenes with exact ground truth"}
    )
    rng = random.Random(seed)
    uploads = []
    scenes: dict[str, dict] = {}
    for index in range(n_images):
        scene = scene_sample(rng)
        buffer = io.BytesIO()
        scene_render(scene).save(buffer, format="PNG")
        scenes[hashlib.sha256(buffer.getvalue()).hexdigest()] = scene_to_dict(scene)
        uploads.append(SimpleUploadedFile(f"scene-{seed}-{index:04d}.png", buffer.getvalue(), "image/png"))
    report = images_import(project=project, files=uploads)
    # Keyed by content, so an image a previous seeding already stored gets its scene as well.
    images = list(Image.objects.filter(project=project, sha256__in=scenes, scene__isnull=True))
    for image in images:
        image.scene = scenes[image.sha256]
    Image.objects.bulk_update(images, ["scene"])
    captions_generate_for_images(image_ids=report.created)
    return project
