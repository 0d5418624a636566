"""Detection before anyone waits: TLDR scores new captions in batches on the GPU queue.

A task is served only once its caption is scored (or in the no-highlight arm). When a new reward
model becomes active, captions nobody has corrected yet are scored again.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction
from PIL import Image as PilImage

from annotator.models import Assignment, Caption, Detection, Image, Job, ModelVersion, Task
from annotator.selectors.model_versions import model_version_active
from annotator.services.jobs import Progress, job_create, job_enqueue_on_commit

if TYPE_CHECKING:  # model code is imported in the worker only
    from transformers import ProcessorMixin

    from reward.detect import WordScore
    from reward.model import TokenRewardModel

DETECT_BATCH = 32
UNSCORABLE_NAMED = 10


class CaptionsUnscorable(ValueError):
    """Captions the active reward model cannot score (longer than its context); the message names them.

    They stay pending, so nobody is served a caption without its highlights, and the job fails so an
    admin sees them; every other caption of the job was scored and stored.
    """


def image_pixels(image: Image) -> PilImage.Image:
    """The stored image as RGB pixels, read through the storage API (local disk or a bucket)."""
    with image.file.open("rb") as stream, PilImage.open(stream) as opened:
        return opened.convert("RGB")


def captions_detect(*, caption_ids: list[int], on_progress: Progress | None = None) -> int:
    """Score the captions with the active reward model, store current detections, open their tasks.

    Returns how many captions were scored; ids of deleted captions are passed over. Captions too long
    for the model raise `CaptionsUnscorable` at the end, once all the others are stored.
    """
    captions = list(Caption.objects.filter(pk__in=caption_ids).select_related("image").order_by("pk"))
    if not captions:
        return 0
    version = model_version_active(kind=ModelVersion.Kind.REWARD)
    # Model code (torch) is imported here, in the worker, so web processes never load it.
    from annotator.inference import reward_model_get

    reward_model, processor = reward_model_get(version.path)
    unscorable: list[str] = []
    for start in range(0, len(captions), DETECT_BATCH):
        batch = captions[start : start + DETECT_BATCH]
        scored, too_long = _batch_score(reward_model, processor, batch)
        unscorable += too_long
        with transaction.atomic():
            Detection.objects.filter(caption__in=[c for c, _ in scored], is_current=True).update(is_current=False)
            Detection.objects.bulk_create(
                [
                    Detection(
                        caption=caption,
                        reward_model_version=version,
                        words=[{"text": w.text, "start": w.start, "end": w.end, "p_bad": w.p_bad} for w in words],
                        caption_p_bad=max((w.p_bad for w in words), default=0.0),
                    )
                    for caption, words in scored
                ]
            )
            Task.objects.filter(caption__in=[c for c, _ in scored], status=Task.Status.PENDING).update(
                status=Task.Status.READY
            )
        if on_progress is not None:
            on_progress(
                (start + len(batch)) / len(captions), f"scored {start + len(batch)} of {len(captions)} captions"
            )
    if unscorable:
        more = f"; and {len(unscorable) - UNSCORABLE_NAMED} more" if len(unscorable) > UNSCORABLE_NAMED else ""
        raise CaptionsUnscorable(
            f"{len(unscorable)} of {len(captions)} captions are too long for reward model {version.name} and stay "
            f"pending (the others were scored): {'; '.join(unscorable[:UNSCORABLE_NAMED])}{more}"
        )
    return len(captions)


def _batch_score(
    reward_model: TokenRewardModel, processor: ProcessorMixin, batch: list[Caption]
) -> tuple[list[tuple[Caption, list[WordScore]]], list[str]]:
    """Word scores of a batch of captions, and a line naming each caption too long to score.

    A batch is scored whole; only when a caption in it does not fit are its captions scored one by one.
    """
    from reward.detect import score
    from reward.tokens import CaptionTooLong

    images = [image_pixels(caption.image) for caption in batch]
    try:
        word_scores = score(reward_model, processor, images, [c.text for c in batch])
        return list(zip(batch, word_scores, strict=True)), []
    except CaptionTooLong:
        pass
    scored, too_long = [], []
    for caption, image in zip(batch, images, strict=True):
        try:
            scored.append((caption, score(reward_model, processor, [image], [caption.text])[0]))
        except CaptionTooLong as error:
            too_long.append(f"caption {caption.pk} {error.reason}")
    return scored, too_long


def detection_enqueue(*, caption_ids: list[int], created_by: AbstractBaseUser | None = None) -> Job:
    """A detection job for the captions, sent to the GPU queue when the transaction commits."""
    from annotator.tasks import captions_detect_task

    job = job_create(kind=Job.Kind.DETECT, payload={"caption_ids": caption_ids}, created_by=created_by)
    job_enqueue_on_commit(job=job, send=captions_detect_task.delay)
    return job


def captions_unfinished_ids() -> list[int]:
    """Captions whose task is still open and that nobody has corrected: what a new reward model re-scores."""
    corrected = Assignment.objects.filter(status=Assignment.Status.SUBMITTED).values("task")
    return list(
        Task.objects.exclude(status=Task.Status.DONE).exclude(pk__in=corrected).values_list("caption_id", flat=True)
    )


def detections_refresh_enqueue(*, model_version: ModelVersion) -> Job | None:
    """A re-scoring job for the newly active reward model (None when no caption waits for one).

    The job picks the captions when it runs, so a caption corrected meanwhile is left alone.
    """
    from annotator.tasks import detections_refresh_task

    if not captions_unfinished_ids():
        return None
    job = job_create(kind=Job.Kind.RESCORE, payload={"model_version_id": model_version.pk})
    job_enqueue_on_commit(job=job, send=detections_refresh_task.delay)
    return job
