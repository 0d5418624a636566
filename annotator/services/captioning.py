"""Captioning images with the active captioner (the policy): a batched job on the GPU queue."""

from __future__ import annotations

from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction

from annotator.models import Caption, Image, Job, ModelVersion, Project
from annotator.selectors.model_versions import ModelNotActive, model_version_active
from annotator.selectors.projects import images_uncaptioned
from annotator.services.captions import captions_create
from annotator.services.detection import captions_detect, image_pixels
from annotator.services.jobs import Progress, job_create, job_enqueue_on_commit

CAPTION_BATCH = 16


def captions_generate_for_images(*, image_ids: list[int], on_progress: Progress | None = None) -> list[int]:
    """Caption each image with the active captioner, then score the new captions if a reward model is active.

    Returns the new captions' ids. Scoring runs here rather than as another job: this worker already
    holds the GPU and will load the reward model once for all of them.
    """
    version = model_version_active(kind=ModelVersion.Kind.POLICY)
    # Model code (torch) is imported here, in the worker, so web processes never load it.
    from annotator.inference import captioner_get
    from reward.vlm import captions_generate

    model, processor = captioner_get(version.path)
    images = list(Image.objects.filter(pk__in=image_ids).order_by("pk"))
    caption_ids: list[int] = []
    for start in range(0, len(images), CAPTION_BATCH):
        batch = images[start : start + CAPTION_BATCH]
        texts = captions_generate(model, processor, [image_pixels(image) for image in batch])
        created = captions_create(
            captions=list(zip(batch, texts, strict=True)), source=Caption.Source.POLICY, model_version=version.name
        )
        caption_ids += [caption.pk for caption in created]
        if on_progress is not None:
            on_progress(0.5 * (start + len(batch)) / len(images), f"captioned {start + len(batch)} of {len(images)}")
    try:
        model_version_active(kind=ModelVersion.Kind.REWARD)
    except ModelNotActive:
        return caption_ids
    captions_detect(
        caption_ids=caption_ids,
        on_progress=None if on_progress is None else lambda fraction, step: on_progress(0.5 + 0.5 * fraction, step),
    )
    return caption_ids


def captioning_enqueue(*, project: Project, image_ids: list[int] | None, created_by: AbstractBaseUser | None) -> Job:
    """A captioning job for the given images of the project (all its images when None)."""
    from annotator.tasks import captions_generate_task

    images = project.images.all() if image_ids is None else project.images.filter(pk__in=image_ids)
    job = job_create(
        kind=Job.Kind.CAPTION,
        payload={"project_id": project.pk, "image_ids": list(images.values_list("pk", flat=True))},
        created_by=created_by,
    )
    job_enqueue_on_commit(job=job, send=captions_generate_task.delay)
    return job


def captioning_enqueue_uncaptioned(*, project: Project, created_by: AbstractBaseUser | None) -> Job | None:
    """A captioning job for the project's images with no caption that no queued or running job is captioning.

    None when there is no such image, so a second click while a job waits captions nothing twice.
    Raises `ModelNotActive` at once without an active captioner, rather than queueing a job that
    could only fail on the GPU worker.
    """
    model_version_active(kind=ModelVersion.Kind.POLICY)
    with transaction.atomic():
        # Two submits at once (a double click) queue one job: the second waits here and then sees the first's.
        Project.objects.select_for_update().filter(pk=project.pk).first()
        in_flight = Job.objects.filter(
            kind=Job.Kind.CAPTION, status__in=[Job.Status.QUEUED, Job.Status.RUNNING], payload__project_id=project.pk
        ).values_list("payload", flat=True)
        being_captioned = {image_id for payload in in_flight for image_id in payload.get("image_ids", [])}
        image_ids = [
            pk for pk in images_uncaptioned(project=project).values_list("pk", flat=True) if pk not in being_captioned
        ]
        if not image_ids:
            return None
        return captioning_enqueue(project=project, image_ids=image_ids, created_by=created_by)
