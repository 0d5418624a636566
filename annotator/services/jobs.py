"""Jobs: background work recorded in the Job table, which the pages poll for status and progress.

A job's life: `job_create` (queued) → the worker's `job_claim` (running) → `job_running` records how it
ended: succeeded, failed (with the traceback) or cancelled. `job_cancel` ends a queued job at once (its
task then finds nothing to do) and asks a running one to stop at its next step. A message redelivered
for a running job means its worker died (the broker's visibility timeout is longer than any job): the
job starts again once, and fails with a message that says so the next time.
"""

from __future__ import annotations

import re
import time
import traceback
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction
from django.utils import timezone

from annotator.models import Job, Project

Progress = Callable[[float, str], None]
MESSAGE_TAIL = 4_000
LOG_TAIL = 4_000
# A cancel request is read from the database at most this often: a training step can be milliseconds.
CANCEL_CHECK_SECONDS = 2.0
# Deliveries of one job: the first, and one more after its worker was lost.
MAX_ATTEMPTS = 2
TRAINING_KINDS = (Job.Kind.REWARD_TRAIN, Job.Kind.POLICY_TRAIN)
ENDED = (Job.Status.SUCCEEDED, Job.Status.FAILED, Job.Status.CANCELLED)
# The training loops report "… loss 0.1234 …" in their progress step; the jobs page shows the number.
LOSS_IN_STEP = re.compile(r"\bloss[\s=:]+(-?\d+(?:\.\d+)?(?:e[-+]?\d+)?)", re.IGNORECASE)


class JobCancelled(Exception):
    """Someone cancelled the job while it ran; `job_running` ends it cancelled, not failed."""


class JobNotCancellable(Exception):
    """The job has already ended; the message says how."""


def job_create(
    *, kind: str, payload: dict, created_by: AbstractBaseUser | None = None, project: Project | None = None
) -> Job:
    """A queued job; the caller enqueues its Celery task with `transaction.on_commit`."""
    return Job.objects.create(
        kind=kind,
        payload=payload,
        project=project,
        created_by=created_by if created_by and created_by.is_authenticated else None,
    )


def job_enqueue_on_commit(*, job: Job, send: Callable[[int], object]) -> None:
    """Send the job's Celery task once the rows it reads are committed."""
    transaction.on_commit(lambda: send(job.pk))


def job_claim(*, job_id: int) -> Job | None:
    """Take a job for this worker and mark it running; None when the task must do nothing.

    Nothing to do: the job was cancelled while it waited in the queue, has already ended, or its
    worker was lost `MAX_ATTEMPTS` times already (then it is marked failed here, with the reason).
    A running job redelivered is one whose worker died: it starts again from the beginning.
    """
    with transaction.atomic():
        job = Job.objects.select_for_update().filter(pk=job_id).first()
        if job is None or job.status in ENDED:
            return None
        now = timezone.now()
        if job.status == Job.Status.RUNNING:
            lost_at = f"its worker was lost (killed, out of memory or restarted) at “{job.step or 'the start'}”"
            if job.cancel_requested or job.attempts >= MAX_ATTEMPTS:
                cancelled = job.cancel_requested
                job.status = Job.Status.CANCELLED if cancelled else Job.Status.FAILED
                job.finished = now
                job.message = (
                    f"{lost_at} after it was asked to stop; nothing was registered"
                    if cancelled
                    else f"{lost_at} on each of {job.attempts} attempts; nothing was registered. "
                    "Check the worker's memory and time limits, then start the job again."
                )
                job.save(update_fields=["status", "finished", "message"])
                return None
            job.message = f"{lost_at}; started again (attempt {job.attempts + 1})"
            job.log = _log_tail(job.log, f"{_clock(now)} {job.message}")
        job.status, job.started, job.progress, job.attempts = Job.Status.RUNNING, now, 0.0, job.attempts + 1
        job.save(update_fields=["status", "started", "progress", "attempts", "log", "message"])
    return job


def job_cancel(*, job: Job) -> Job:
    """Cancel a job: a queued one ends cancelled at once, a running one is asked to stop at its next step.

    A running training job stops training, registers and activates nothing, and ends cancelled; the
    active models stay as they were. Raises `JobNotCancellable` for a job that has already ended.
    """
    with transaction.atomic():
        job = Job.objects.select_for_update().get(pk=job.pk)
        if job.status in ENDED:
            raise JobNotCancellable(f"job #{job.pk} has already {job.status}; there is nothing to cancel")
        if job.status == Job.Status.QUEUED:
            job.status, job.finished = Job.Status.CANCELLED, timezone.now()
            job.message = "cancelled before it started"
        job.cancel_requested = True
        job.save(update_fields=["status", "finished", "message", "cancel_requested"])
    return job


class JobControl:
    """A running job's line to its row: progress, loss and log lines go in; a cancel request and the
    deadline come out.

    Calling it records progress and raises `JobCancelled` once a cancel was requested: a job built
    of short steps stops at the next one. Training code gets `record` (which never raises) and
    `should_stop`, so a training loop ends its own way and the caller decides what to keep.
    """

    def __init__(self, job: Job, *, deadline: float | None = None) -> None:
        self.job_id = job.pk
        self.deadline = deadline
        self.lines: deque[str] = deque(job.log.splitlines()[-50:], maxlen=50)
        self._cancel_checked_at = -CANCEL_CHECK_SECONDS
        self._cancelled = job.cancel_requested

    def __call__(self, fraction: float, step: str) -> None:
        self.record(fraction, step)
        if self.cancel_requested():
            raise JobCancelled(f"job {self.job_id} was cancelled at “{step}”")

    def record(self, fraction: float, step: str) -> None:
        """Progress (0..1), the current step, the loss it names, and a line of the log."""
        self.lines.append(f"{_clock(timezone.now())} {step}")
        update = {"progress": min(1.0, max(0.0, fraction)), "step": step[:200], "log": _log_tail("", *self.lines)}
        if loss := LOSS_IN_STEP.search(step):
            update["loss"] = float(loss.group(1))
        Job.objects.filter(pk=self.job_id).update(**update)

    def note(self, line: str) -> None:
        """A line in the log that moves no progress."""
        self.lines.append(f"{_clock(timezone.now())} {line}")
        Job.objects.filter(pk=self.job_id).update(log=_log_tail("", *self.lines))

    def cancel_requested(self, *, fresh: bool = False) -> bool:
        """Whether someone asked the job to stop (read from the database at most every few seconds)."""
        now = time.monotonic()
        if not self._cancelled and (fresh or now - self._cancel_checked_at >= CANCEL_CHECK_SECONDS):
            self._cancel_checked_at = now
            self._cancelled = Job.objects.filter(pk=self.job_id, cancel_requested=True).exists()
        return self._cancelled

    def past_deadline(self) -> bool:
        return self.deadline is not None and time.monotonic() >= self.deadline

    def should_stop(self) -> bool:
        """For training loops: stop now and save what was trained (cancelled, or out of time)."""
        return self.past_deadline() or self.cancel_requested()


@contextmanager
def job_running(*, job: Job, deadline: float | None = None) -> Iterator[JobControl]:
    """Yield the claimed job's control (a progress callback); record success, cancellation, or the failure
    and its traceback."""
    control = JobControl(job, deadline=deadline)
    try:
        yield control
    except JobCancelled:
        Job.objects.filter(pk=job.pk).update(
            status=Job.Status.CANCELLED,
            finished=timezone.now(),
            message="cancelled while it ran; nothing it would have registered or activated was",
        )
        return
    except Exception:
        Job.objects.filter(pk=job.pk).update(
            status=Job.Status.FAILED, finished=timezone.now(), message=traceback.format_exc()[-MESSAGE_TAIL:]
        )
        raise
    Job.objects.filter(pk=job.pk).update(status=Job.Status.SUCCEEDED, finished=timezone.now(), progress=1.0)


def job_training_deadline(*, time_limit_s: float | None) -> float | None:
    """When training must stop (time.monotonic()) so saving, evaluating and the gate fit in the soft time limit.

    `TLDR_TRAIN_EVAL_SECONDS` are kept for them, but never more than half the limit.
    """
    if not time_limit_s:
        return None
    reserve = min(float(settings.TLDR_TRAIN_EVAL_SECONDS), time_limit_s / 2)
    return time.monotonic() + time_limit_s - reserve


def jobs_lost_fail(*, now: datetime) -> int:
    """Mark failed the training jobs still running past their hard time limit: their worker is gone.

    A hard time limit kills the task and acknowledges its message, so no redelivery will ever end the
    row; until it ends, it also holds the project's one training slot of its kind.
    """
    limit = timedelta(seconds=settings.TLDR_TRAIN_HARD_TIME_LIMIT + 5 * 60)
    return Job.objects.filter(kind__in=TRAINING_KINDS, status=Job.Status.RUNNING, started__lt=now - limit).update(
        status=Job.Status.FAILED,
        finished=now,
        message="still running past its hard time limit: its worker was killed or lost; nothing was registered",
    )


def _clock(moment: datetime) -> str:
    return moment.strftime("%H:%M:%S")


def _log_tail(log: str, *lines: str) -> str:
    text = "\n".join(part for part in (log, *lines) if part)
    return text[-LOG_TAIL:]
