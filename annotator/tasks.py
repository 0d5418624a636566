"""Celery tasks: look the job up, run its service inside `job_running`, which records progress and outcome."""

from __future__ import annotations

from celery import shared_task

from annotator.models import Job
from annotator.services.captioning import captions_generate_for_images
from annotator.services.detection import captions_detect, captions_unfinished_ids
from annotator.services.exports import export_job_run
from annotator.services.jobs import job_running


@shared_task
def captions_detect_task(job_id: int) -> None:
    job = Job.objects.get(pk=job_id)
    with job_running(job=job) as progress:
        captions_detect(caption_ids=job.payload["caption_ids"], on_progress=progress)


@shared_task
def captions_generate_task(job_id: int) -> None:
    job = Job.objects.get(pk=job_id)
    with job_running(job=job) as progress:
        captions_generate_for_images(image_ids=job.payload["image_ids"], on_progress=progress)


@shared_task
def detections_refresh_task(job_id: int) -> None:
    job = Job.objects.get(pk=job_id)
    with job_running(job=job) as progress:
        captions_detect(caption_ids=captions_unfinished_ids(), on_progress=progress)


@shared_task
def corrections_export_task(job_id: int) -> None:
    job = Job.objects.get(pk=job_id)
    with job_running(job=job) as progress:
        export_job_run(job=job, on_progress=progress)
