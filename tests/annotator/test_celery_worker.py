"""A real Celery worker on Redis runs jobs enqueued on commit and records their outcome in the Job table."""

from __future__ import annotations

import os
import subprocess
import time

import pytest
from django.db import transaction

from annotator.models import Job
from annotator.services.detection import detection_enqueue
from tests.annotator.factories import CaptionFactory
from tests.annotator.workers import queues_purge, worker_database_url, worker_start

REDIS_URL = os.environ.get("REDIS_URL", "")

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(not REDIS_URL, reason="needs Redis for a real worker: set REDIS_URL=redis://127.0.0.1:6379/0"),
]


@pytest.fixture
def worker():
    """A worker on both queues, reading the test database; stopped after the test."""
    queue_db = f"{REDIS_URL.rsplit('/', 1)[0]}/15"  # its own Redis database: no stray messages from elsewhere
    env = {**os.environ, "DATABASE_URL": worker_database_url(), "REDIS_URL": queue_db, "CELERY_BROKER_URL": queue_db}
    queues_purge(env)
    process = worker_start(env, output=subprocess.PIPE)
    previous = os.environ.get("CELERY_BROKER_URL")
    from config.celery import app

    app.conf.broker_url = queue_db
    yield process
    process.terminate()
    process.wait(timeout=30)
    app.conf.broker_url = previous or app.conf.broker_url


def _wait_finished(job: Job, timeout: float = 90) -> Job:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job.refresh_from_db()
        if job.status in (Job.Status.SUCCEEDED, Job.Status.FAILED):
            return job
        time.sleep(0.2)
    raise AssertionError(f"job {job.pk} still {job.status} after {timeout} s")


def test_worker_runs_a_job_sent_on_commit_and_records_failure_clearly(worker):
    caption = CaptionFactory()
    with transaction.atomic():
        empty = detection_enqueue(caption_ids=[])
        missing_model = detection_enqueue(caption_ids=[caption.pk])
    assert _wait_finished(empty).status == Job.Status.SUCCEEDED
    failed = _wait_finished(missing_model)
    assert failed.status == Job.Status.FAILED
    assert "no active reward model" in failed.message


def test_a_gpu_job_lands_in_the_gpu_queue_only():
    import redis

    from annotator.tasks import captions_detect_task
    from config.celery import app

    queue_db = f"{REDIS_URL.rsplit('/', 1)[0]}/14"
    client = redis.Redis.from_url(queue_db)
    client.flushdb()
    with app.connection_for_write(queue_db) as connection:
        captions_detect_task.apply_async(args=[0], connection=connection)
    assert (client.llen("gpu"), client.llen("default")) == (1, 0)
    client.flushdb()
