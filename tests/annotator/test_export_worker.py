"""A real Celery worker killed (SIGKILL) in the middle of an export: no partial file is offered, and the
job, redelivered to the next worker, writes the whole file again."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
from django.conf import settings
from django.core.files.storage import default_storage

from annotator.models import Arm, Assignment, Correction, Job, Task
from annotator.services.captions import captions_create
from annotator.services.exports import ExportFilters, export_enqueue, export_file_name
from reward.alignment import word_labels_from_correction
from tests.annotator.conftest import worker_database_url
from tests.annotator.factories import TaskFactory
from tests.annotator.test_exports import DAY_ONE

ROOT = Path(__file__).resolve().parents[2]
REDIS_URL = os.environ.get("REDIS_URL", "")
VISIBILITY_TIMEOUT = 8
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
        "CELERY_VISIBILITY_TIMEOUT": str(VISIBILITY_TIMEOUT),
        "MEDIA_ROOT": str(settings.MEDIA_ROOT),
    }
    purge = [sys.executable, "-m", "celery", "-A", "config", "purge", "-f", "-Q", "gpu,default"]
    subprocess.run(purge, cwd=ROOT, env=env, capture_output=True, timeout=60)
    return env


def _worker_start(env: dict[str, str]) -> subprocess.Popen:
    command = [sys.executable, "-m", "celery", "-A", "config", "worker", "-Q", "gpu,default", "-c", "1"]
    command += ["--pool", "solo", "--without-heartbeat", "--without-gossip", "--without-mingle", "-l", "WARNING"]
    return subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def _corrections_bulk(project, annotator) -> None:
    image = TaskFactory(project=project).caption.image
    texts = [f"{n} red circles" for n in range(CORRECTIONS)]
    captions = captions_create(captions=[(image, text) for text in texts], source="import")
    tasks = Task.objects.filter(caption__in=captions).order_by("id")
    assignments = Assignment.objects.bulk_create(
        Assignment(
            task=task,
            annotator=annotator,
            arm=Arm.TOKENS,
            status=Assignment.Status.SUBMITTED,
            leased_at=DAY_ONE,
            expires_at=DAY_ONE,
            served_at=DAY_ONE,
        )
        for task in tasks.iterator()
    )
    labels = word_labels_from_correction("1 red circles", "1 blue circles").words
    Correction.objects.bulk_create(
        Correction(
            task_id=assignment.task_id,
            assignment=assignment,
            annotator=annotator,
            original_text=text,
            corrected_text=text.replace("red", "blue"),
            word_labels=labels,
            arm=Arm.TOKENS,
            served_at=DAY_ONE,
            submitted_at=DAY_ONE,
            active_seconds=1.0,
            client_submission_id=uuid.uuid4(),
        )
        for text, assignment in zip(texts, assignments, strict=True)
    )


def _send(job: Job, broker: str) -> None:
    from annotator.tasks import corrections_export_task
    from config.celery import app

    with app.connection_for_write(broker) as connection:
        corrections_export_task.apply_async(args=[job.pk], connection=connection)


def _wait_for(job: Job, condition, timeout: float, what: str, poll: float = 0.02) -> Job:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job.refresh_from_db()
        if condition(job):
            return job
        time.sleep(poll)
    raise AssertionError(f"job {job.pk} never {what} within {timeout} s: {job.status}, {job.step!r}, {job.message}")


def test_a_worker_killed_mid_export_offers_no_file_and_the_next_worker_writes_it_whole(
    worker_env, project, annotator, admin_user, api, django_capture_on_commit_callbacks
):
    _corrections_bulk(project, annotator)
    with django_capture_on_commit_callbacks(execute=False):  # sent below, to this test's own broker
        job = export_enqueue(project=project, export_format="jsonl", filters=ExportFilters(), created_by=admin_user)
    first = _worker_start(worker_env)
    try:
        _send(job, worker_env["CELERY_BROKER_URL"])
        _wait_for(job, lambda j: j.status == Job.Status.RUNNING and 0 < j.progress < 1, 120, "got under way")
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

    time.sleep(max(0.0, job.started.timestamp() + VISIBILITY_TIMEOUT + 1 - time.time()))
    second = _worker_start(worker_env)
    try:
        _wait_for(job, lambda j: j.status not in (Job.Status.QUEUED, Job.Status.RUNNING), 180, "ended", poll=0.3)
    finally:
        second.terminate()
        second.wait(timeout=30)
    assert job.status == Job.Status.SUCCEEDED, job.message
    assert job.attempts == 2 and "worker was lost" in job.message
    with default_storage.open(export_file_name(job=job), "rb") as file:
        assert sum(1 for _ in file) == CORRECTIONS
    assert api.get(f"/api/exports/{job.pk}/download/").status_code == 200
