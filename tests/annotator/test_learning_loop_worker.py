"""A real Celery worker killed (SIGKILL) in the middle of retraining TLDR: nothing half-written becomes a
model, and the job, redelivered to the next worker, starts again and finishes."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import pytest
from django.conf import settings

from annotator.models import Job, ModelVersion
from annotator.services.retraining import TrainingOptions, training_enqueue
from tests.annotator.conftest import CAPTIONER, REWARD_MODEL
from tests.annotator.factories import corrections_plant
from tests.annotator.workers import (
    VISIBILITY_TIMEOUT_S,
    job_finish_on_next_worker,
    job_wait,
    queues_purge,
    worker_database_url,
    worker_start,
)

REDIS_URL = os.environ.get("REDIS_URL", "")

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.slow,
    pytest.mark.skipif(not REDIS_URL, reason="needs Redis for a real worker: set REDIS_URL=redis://127.0.0.1:6379/0"),
]


@pytest.fixture
def worker_env(models_dir: Path) -> dict[str, str]:
    """What a worker needs to see this test's database, media, models and queue (REDIS_URL's own database)."""
    env = {
        **os.environ,
        "DATABASE_URL": worker_database_url(),
        "CELERY_BROKER_URL": REDIS_URL,
        "CELERY_VISIBILITY_TIMEOUT": str(VISIBILITY_TIMEOUT_S),
        "MEDIA_ROOT": str(settings.MEDIA_ROOT),
        "TLDR_MODELS_DIR": str(models_dir),
        "TLDR_REWARD_TRAIN_EPOCHS": "10000",  # half a minute of training, not a few passes: time to kill it
    }
    queues_purge(env)
    return env


def _send(job: Job) -> None:
    """What `training_enqueue` sends on commit, over a connection of its own: the app's pooled one may
    point at another test's broker."""
    from annotator.tasks import reward_retrain_task
    from config.celery import app

    with app.connection_for_write(REDIS_URL) as connection:
        reward_retrain_task.apply_async(args=[job.pk], connection=connection)


def test_a_worker_killed_mid_training_leaves_no_model_and_the_job_restarts_on_the_next(
    worker_env, active_models, models_dir, project, annotator, settings
):
    settings.TLDR_TRAIN_MIN_CORRECTIONS = 10
    corrections_plant(project, annotator, 10)
    first = worker_start(worker_env)
    try:
        job = training_enqueue(project=project, kind="reward", options=TrainingOptions(minutes=0.5), send=False).job
        _send(job)
        training = ("loading the model to train", "training: step")
        job_wait(job, lambda j: j.step.startswith(training), 180, "reached the training loop")
        time.sleep(3)  # a few steps into half a minute of training
        os.kill(first.pid, signal.SIGKILL)
        first.wait(timeout=30)
    finally:
        if first.poll() is None:
            first.kill()
    job.refresh_from_db()
    name = f"tldr-p{project.pk}-j{job.pk}"
    assert job.status == Job.Status.RUNNING and job.attempts == 1  # not succeeded: nobody finished it
    assert set(ModelVersion.objects.values_list("name", "status")) == {(CAPTIONER, "active"), (REWARD_MODEL, "active")}
    assert not (models_dir / name).exists()  # at most the hidden partial folder, which nothing points to

    job_finish_on_next_worker(job, worker_env, 240)
    assert job.status == Job.Status.SUCCEEDED, job.message
    assert job.attempts == 2 and "worker was lost" in job.message and "started again (attempt 2)" in job.message
    version = ModelVersion.objects.get(name=name)
    assert (models_dir / name / "reward_model.json").is_file()
    assert {path.name for path in models_dir.iterdir()} == {CAPTIONER, REWARD_MODEL, version.name}
