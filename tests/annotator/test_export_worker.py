"""A real Celery worker killed (SIGKILL) in the middle of an export: no partial file is offered, and the
job, redelivered to the next worker, writes the whole file again."""

from __future__ import annotations

import os
import signal

import pytest
from django.conf import settings
from django.core.files.storage import default_storage

from annotator.models import Job
from annotator.services.exports import ExportFilters, export_enqueue, export_file_name
from tests.annotator.factories import corrections_bulk
from tests.annotator.test_exports import DAY_ONE
from tests.annotator.workers import (
    VISIBILITY_TIMEOUT_S,
    job_finish_on_next_worker,
    job_wait,
    queues_purge,
    worker_database_url,
    worker_start,
)

REDIS_URL = os.environ.get("REDIS_URL", "")
CORRECTIONS = 20_000  # four progress steps of 5,000: seconds of work, so the kill lands in the middle

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.slow,
    pytest.mark.skipif(not REDIS_URL, reason="needs Redis for a real worker: set REDIS_URL=redis://127.0.0.1:6379/0"),
]


@pytest.fixture
def worker_env() -> dict[str, str]:
    queue = f"{REDIS_URL.rsplit('/', 1)[0]}/14"  # a Redis database of its own: no other test's messages
    env = {
        **os.environ,
        "DATABASE_URL": worker_database_url(),
        "REDIS_URL": queue,
        "CELERY_BROKER_URL": queue,
        "CELERY_VISIBILITY_TIMEOUT": str(VISIBILITY_TIMEOUT_S),
        "MEDIA_ROOT": str(settings.MEDIA_ROOT),
    }
    queues_purge(env)
    return env


def _send(job: Job, broker: str) -> None:
    from annotator.tasks import corrections_export_task
    from config.celery import app

    with app.connection_for_write(broker) as connection:
        corrections_export_task.apply_async(args=[job.pk], connection=connection)


def test_a_worker_killed_mid_export_offers_no_file_and_the_next_worker_writes_it_whole(
    worker_env, project, annotator, admin_user, api, django_capture_on_commit_callbacks
):
    corrections_bulk(project, annotator, CORRECTIONS, at=DAY_ONE)
    with django_capture_on_commit_callbacks(execute=False):  # sent below, to this test's own broker
        job = export_enqueue(project=project, export_format="jsonl", filters=ExportFilters(), created_by=admin_user)
    first = worker_start(worker_env)
    try:
        _send(job, worker_env["CELERY_BROKER_URL"])
        job_wait(job, lambda j: j.status == Job.Status.RUNNING and 0 < j.progress < 1, 120, "got under way", poll=0.02)
        os.kill(first.pid, signal.SIGKILL)
        first.wait(timeout=30)
    finally:
        if first.poll() is None:
            first.kill()
    job.refresh_from_db()
    assert job.status == Job.Status.RUNNING and job.attempts == 1  # nobody finished it
    assert export_file_name(job=job) is None and "file" not in job.metrics
    api.force_authenticate(admin_user)
    assert api.get(f"/api/exports/{job.pk}/download/").status_code == 409

    job_finish_on_next_worker(job, worker_env, 180)
    assert job.status == Job.Status.SUCCEEDED, job.message
    assert job.attempts == 2 and "worker was lost" in job.message
    with default_storage.open(export_file_name(job=job), "rb") as file:
        assert sum(1 for _ in file) == CORRECTIONS
    assert api.get(f"/api/exports/{job.pk}/download/").status_code == 200
