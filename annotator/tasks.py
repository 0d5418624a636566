"""Celery tasks: claim the job (nothing to do when it was cancelled while queued), run its service inside
`job_running`, which records progress and outcome.

The training tasks carry a soft time limit (TLDR_TRAIN_TIME_LIMIT) their training stops before, so the
model trained so far is still evaluated and gated, and a hard one (TLDR_TRAIN_HARD_TIME_LIMIT) that
kills a job still overrunning; a killed job registers nothing.
"""

from __future__ import annotations

from celery import shared_task
from django.conf import settings
from django.utils import timezone

from annotator.services.captioning import captions_generate_for_images
from annotator.services.detection import captions_detect, captions_unfinished_ids
from annotator.services.exports import export_job_run
from annotator.services.jobs import job_claim, job_running
from annotator.services.policy_training import policy_train_job_run
from annotator.services.retraining import reward_retrain_due_enqueue, reward_retrain_job_run

TRAINING_LIMITS = {"soft_time_limit": settings.TLDR_TRAIN_TIME_LIMIT, "time_limit": settings.TLDR_TRAIN_HARD_TIME_LIMIT}


@shared_task
def captions_detect_task(job_id: int) -> None:
    if job := job_claim(job_id=job_id):
        with job_running(job=job) as progress:
            captions_detect(caption_ids=job.payload["caption_ids"], on_progress=progress)


@shared_task
def captions_generate_task(job_id: int) -> None:
    if job := job_claim(job_id=job_id):
        with job_running(job=job) as progress:
            captions_generate_for_images(image_ids=job.payload["image_ids"], on_progress=progress)


@shared_task
def detections_refresh_task(job_id: int) -> None:
    if job := job_claim(job_id=job_id):
        with job_running(job=job) as progress:
            captions_detect(caption_ids=captions_unfinished_ids(), on_progress=progress)


@shared_task
def corrections_export_task(job_id: int) -> None:
    if job := job_claim(job_id=job_id):
        with job_running(job=job) as progress:
            export_job_run(job=job, on_progress=progress)


@shared_task(bind=True, **TRAINING_LIMITS)
def reward_retrain_task(self, job_id: int) -> None:
    if job := job_claim(job_id=job_id):
        reward_retrain_job_run(job=job, time_limit_s=self.soft_time_limit)


@shared_task(bind=True, **TRAINING_LIMITS)
def policy_train_task(self, job_id: int) -> None:
    if job := job_claim(job_id=job_id):
        policy_train_job_run(job=job, time_limit_s=self.soft_time_limit)


@shared_task
def learning_loop_check_task() -> None:
    reward_retrain_due_enqueue(now=timezone.now())
