"""Jobs: background work recorded in the Job table, which the pages poll for status and progress."""

from __future__ import annotations

import traceback
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction
from django.utils import timezone

from annotator.models import Job

Progress = Callable[[float, str], None]
MESSAGE_TAIL = 4_000


def job_create(*, kind: str, payload: dict, created_by: AbstractBaseUser | None = None) -> Job:
    """A queued job; the caller enqueues its Celery task with `transaction.on_commit`."""
    return Job.objects.create(
        kind=kind, payload=payload, created_by=created_by if created_by and created_by.is_authenticated else None
    )


@contextmanager
def job_running(*, job: Job) -> Iterator[Progress]:
    """Mark the job running; yield a progress callback; record success, or the failure and its traceback."""
    job.status, job.started, job.progress = Job.Status.RUNNING, timezone.now(), 0.0
    job.save(update_fields=["status", "started", "progress"])

    def progress(fraction: float, step: str) -> None:
        Job.objects.filter(pk=job.pk).update(progress=min(1.0, max(0.0, fraction)), step=step[:200])

    try:
        yield progress
    except Exception:
        Job.objects.filter(pk=job.pk).update(
            status=Job.Status.FAILED, finished=timezone.now(), message=traceback.format_exc()[-MESSAGE_TAIL:]
        )
        raise
    Job.objects.filter(pk=job.pk).update(status=Job.Status.SUCCEEDED, finished=timezone.now(), progress=1.0)


def job_enqueue_on_commit(*, job: Job, send: Callable[[int], object]) -> None:
    """Send the job's Celery task once the rows it reads are committed."""
    transaction.on_commit(lambda: send(job.pk))
