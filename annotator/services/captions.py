"""Captions enter the queue: each new caption gets its task, which waits for TLDR's detection."""

from __future__ import annotations

from django.db import transaction

from annotator.models import Caption, Image, Task


def captions_create(*, captions: list[tuple[Image, str]], source: str, model_version: str = "") -> list[Caption]:
    """Captions of images, each with a pending task in its image's project."""
    with transaction.atomic():
        created = Caption.objects.bulk_create(
            [Caption(image=image, text=text, source=source, model_version=model_version) for image, text in captions]
        )
        Task.objects.bulk_create([Task(project_id=caption.image.project_id, caption=caption) for caption in created])
    return created
