"""The next-task queue: leases with expiry and heartbeat, skip, overlap k, resume after a reload.

PostgreSQL serves concurrent annotators with `SELECT … FOR UPDATE SKIP LOCKED` on the task row:
a task another request is leasing right now is passed over instead of waited for, and the slot
count is taken again under the lock (a fresh statement sees every lease committed before it), so
no caption ever has more than `project.overlap` live leases and submitted corrections. SQLite
ignores SKIP LOCKED; its transactions start IMMEDIATE (see settings), which serialises leasing.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from django.contrib.auth.models import AbstractBaseUser
from django.db import connection, transaction

from annotator.models import Arm, Assignment, Project, Task
from annotator.selectors.tasks import (
    assignment_for_update,
    assignment_served,
    lease_current,
    task_open_lock,
    task_slots,
)
from annotator.services.arms import arm_draw
from annotator.services.timing import ClientEvent, events_merge
from annotator.sql import fetch_one, row_insert

# Tasks found full under the lock (another request filled them between the snapshot and the lock)
# before giving up; each try costs one short query.
LEASE_TRIES = 8


class LeaseExpired(Exception):
    """The annotator no longer holds the task; `corrected_text` is what it tried to submit, kept."""

    def __init__(self, detail: str, *, corrected_text: str | None = None) -> None:
        super().__init__(detail)
        self.detail = detail
        self.corrected_text = corrected_text


def task_lease_next(*, annotator: AbstractBaseUser, project: Project, now: datetime) -> Assignment | None:
    """The annotator's task to work on: its unexpired lease if it has one, else a new lease, else None."""
    with transaction.atomic():
        # Also the lock that runs one request per annotator at a time: a double click on "next" must
        # not take two leases. Read after it, the current lease includes one a double click just took.
        served = _served_count_take(annotator=annotator, project=project)
        current_assignment_id = lease_current(annotator=annotator, project=project, now=now)
        if current_assignment_id is not None:
            _served_count_give_back(annotator_id=annotator.pk, project_id=project.pk)
            return assignment_served(assignment_id=current_assignment_id)
        arm = arm_draw(annotator=annotator, project=project, served=served)
        # The no-highlight arm shows nothing TLDR wrote, so it need not wait for detection.
        statuses = [Task.Status.READY, Task.Status.PENDING] if arm == Arm.NONE else [Task.Status.READY]
        found = _task_with_free_slot_lock(annotator=annotator, project=project, now=now, statuses=statuses)
        if found is None:
            _served_count_give_back(annotator_id=annotator.pk, project_id=project.pk)
            return None
        task, own_assignment_id = found
        expires_at = now + timedelta(seconds=project.lease_seconds)
        if own_assignment_id is None:
            assignment = Assignment(
                task=task, annotator=annotator, arm=arm, leased_at=now, expires_at=expires_at, served_at=now
            )
            row_insert(assignment)  # hand-written (see `annotator.sql`): "next" is made all day
            return assignment
        # The annotator's own lease on this task had expired and nobody took the slot: it comes back
        # with its arm, events and draft, so its timing and text carry on. It was counted when first served.
        _served_count_give_back(annotator_id=annotator.pk, project_id=project.pk)
        assignment = Assignment.objects.get(pk=own_assignment_id)
        assignment.task = task
        assignment.leased_at, assignment.expires_at = now, expires_at
        assignment.save(update_fields=["leased_at", "expires_at"])
        return assignment


def _served_count_take(*, annotator: AbstractBaseUser, project: Project) -> int:
    """Count the new task this "next" is about to serve in the annotator's `QueuePlace` (made on its
    first "next" in the project) and return the count before it: where its arm draw stands.

    The row stays locked until the transaction ends. Counting up front, in the statement that takes
    the lock, keeps the common call (a new lease) at one statement; the calls that serve no new task
    give the count back.
    """
    (served,) = fetch_one(
        """
        INSERT INTO annotator_queueplace (project_id, annotator_id, served) VALUES (%s, %s, 1)
        ON CONFLICT (project_id, annotator_id) DO UPDATE SET served = annotator_queueplace.served + 1
        RETURNING served
        """,
        [project.pk, annotator.pk],
    )
    return served - 1


def _served_count_give_back(*, annotator_id: int, project_id: int) -> None:
    with connection.cursor() as cursor:
        cursor.execute(
            "UPDATE annotator_queueplace SET served = served - 1"
            " WHERE project_id = %s AND annotator_id = %s AND served > 0",
            [project_id, annotator_id],
        )


def _task_with_free_slot_lock(
    *, annotator: AbstractBaseUser, project: Project, now: datetime, statuses: list[str]
) -> tuple[Task, int | None] | None:
    """The first open task, row-locked, with a slot still free under the lock, and the id of the
    annotator's own earlier assignment on it (an expired lease) if there is one.

    Rows other requests are leasing are skipped first; only when that finds nothing does it wait
    for them (their transactions are short), since a skipped row may still have a free slot (k > 1)
    and an annotator must not be told "nothing to do" while work is left. The caption comes with the
    task and the project is the caller's, so serving the lease reads neither again.
    """
    for skip_locked in (True, False):
        full: list[int] = []
        for _ in range(LEASE_TRIES):
            task = task_open_lock(
                annotator=annotator,
                project=project,
                now=now,
                statuses=statuses,
                passed_over=full,
                skip_locked=skip_locked,
            )
            if task is None:
                break
            task.project = project
            slots = task_slots(task=task, annotator=annotator, now=now)
            if slots.held < project.overlap:
                return task, slots.own_assignment_id
            full.append(task.pk)
    return None


def lease_renew(*, annotator: AbstractBaseUser, task: Task, now: datetime) -> Assignment:
    """Heartbeat: push the lease's expiry out by the project's lease length, or `LeaseExpired`."""
    with transaction.atomic():
        assignment = assignment_for_update(annotator=annotator, task=task)
        if assignment.status != Assignment.Status.LEASED or assignment.expires_at <= now:
            raise LeaseExpired(lease_lost_detail(assignment))
        assignment.expires_at = now + timedelta(seconds=task.project.lease_seconds)
        assignment.heartbeat_at = now
        assignment.save(update_fields=["expires_at", "heartbeat_at"])
        return assignment


def task_skip(*, annotator: AbstractBaseUser, task: Task) -> None:
    """Give the task back: its slot opens for someone else and this annotator never gets it again."""
    with transaction.atomic():
        assignment = assignment_for_update(annotator=annotator, task=task)
        if assignment.status == Assignment.Status.LEASED:
            assignment.status = Assignment.Status.SKIPPED
            assignment.save(update_fields=["status"])
            # Skipped tasks are not counted: the arm it skipped comes back on its next task.
            _served_count_give_back(annotator_id=annotator.pk, project_id=task.project_id)


def events_record(*, annotator: AbstractBaseUser, task: Task, events: list[ClientEvent]) -> None:
    """Keep the client's timing events of a task still being worked on (see `services.timing`)."""
    with transaction.atomic():
        assignment = assignment_for_update(annotator=annotator, task=task)
        if assignment.status == Assignment.Status.LEASED:
            assignment.events = events_merge(assignment.events, events)
            assignment.save(update_fields=["events"])


def lease_lost_detail(assignment: Assignment) -> str:
    if assignment.status == Assignment.Status.SUBMITTED:
        return "This task was already submitted. Ask for the next task."
    if assignment.status == Assignment.Status.SKIPPED:
        return "This task was skipped. Ask for the next task."
    return (
        "Your lease on this task expired. Your text is kept: ask for the next task; if the caption is "
        "still free it comes back to you with your text as a draft, otherwise copy your text if you need it."
    )
