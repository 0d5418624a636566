"""Real Celery workers for the tests that need one: started on this test's database, purged queues, a
wait for a job's row to reach a state, and the next worker taking over a killed one's job."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from django.db import connection

from annotator.models import Job

ROOT = Path(__file__).resolve().parents[2]
QUEUES = "gpu,default"
# Short, so the next worker takes a dead worker's message over within seconds (production: hours).
VISIBILITY_TIMEOUT_S = 8


def worker_database_url() -> str:
    """The test database as a URL, for a Celery worker started in a process of its own."""
    db = connection.settings_dict
    if connection.vendor == "postgresql":
        return f"postgres://{db['USER']}:{db['PASSWORD']}@{db['HOST']}:{db['PORT'] or 5432}/{db['NAME']}"
    return f"sqlite:///{db['NAME']}"


def queues_purge(env: dict[str, str]) -> None:
    """Drop any message left on the broker `env` names, so a test sees only its own."""
    command = [sys.executable, "-m", "celery", "-A", "config", "purge", "-f", "-Q", QUEUES]
    subprocess.run(command, cwd=ROOT, env=env, capture_output=True, timeout=60)


def worker_start(env: dict[str, str], *, output: int = subprocess.DEVNULL) -> subprocess.Popen:
    """One worker process on both queues, one task at a time, as the demo runs it."""
    command = [sys.executable, "-m", "celery", "-A", "config", "worker", "-Q", QUEUES, "-c", "1", "--pool", "solo"]
    command += ["--without-heartbeat", "--without-gossip", "--without-mingle", "-l", "WARNING"]
    stderr = subprocess.STDOUT if output == subprocess.PIPE else subprocess.DEVNULL
    return subprocess.Popen(command, cwd=ROOT, env=env, stdout=output, stderr=stderr, text=True)


def job_wait(job: Job, condition: Callable[[Job], bool], timeout: float, what: str, *, poll: float = 0.3) -> Job:
    """Refresh the job until `condition` holds; fail naming `what` it never did, with its state and log."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job.refresh_from_db()
        if condition(job):
            return job
        time.sleep(poll)
    raise AssertionError(
        f"job {job.pk} never {what} within {timeout} s: {job.status}, {job.step!r}, {job.message}\n{job.log}"
    )


def job_finish_on_next_worker(job: Job, env: dict[str, str], timeout: float) -> Job:
    """Once the broker hands the killed worker's unacknowledged message on (its visibility timeout after
    the job started), a fresh worker runs until the job has ended; `env` sets VISIBILITY_TIMEOUT_S."""
    time.sleep(max(0.0, job.started.timestamp() + VISIBILITY_TIMEOUT_S + 1 - time.time()))
    worker = worker_start(env)
    try:
        return job_wait(job, lambda j: j.status not in (Job.Status.QUEUED, Job.Status.RUNNING), timeout, "ended")
    finally:
        worker.terminate()
        worker.wait(timeout=30)
