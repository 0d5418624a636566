"""Reads of the queue: which tasks an annotator may be given, and what a served task shows.

The statements of the next-task and submit calls are hand-written SQL (see `annotator.sql`).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from django.contrib.auth.models import AbstractBaseUser
from django.db import connection
from django.urls import reverse

from annotator.models import Arm, Assignment, Caption, Detection, Project, Task
from annotator.selectors.projects import PROJECT_COLUMNS
from annotator.sql import columns_of, fetch_one, for_update, model_from_row, placeholders, select_list
from reward.words import response_words

TASK_COLUMNS, CAPTION_COLUMNS = columns_of(Task), columns_of(Caption)
ASSIGNMENT_COLUMNS, DETECTION_COLUMNS = columns_of(Assignment), columns_of(Detection)
# A task (t) and its caption (c), as `_task_from_row` reads them back.
TASK_AND_CAPTION = f"{select_list('t', TASK_COLUMNS)}, {select_list('c', CAPTION_COLUMNS)}"


class AssignmentNotFound(Exception):
    """The annotator was never given this task."""


def _task_from_row(row: tuple) -> Task:
    """The task and its caption from a row that starts with `TASK_AND_CAPTION`."""
    end_of_task, end_of_caption = len(TASK_COLUMNS), len(TASK_COLUMNS) + len(CAPTION_COLUMNS)
    task = model_from_row(Task, TASK_COLUMNS, row[:end_of_task])
    task.caption = model_from_row(Caption, CAPTION_COLUMNS, row[end_of_task:end_of_caption])
    return task


def lease_current(*, annotator: AbstractBaseUser, project: Project, now: datetime) -> int | None:
    """The id of the annotator's unexpired lease in `project`: what a reload resumes."""
    row = fetch_one(
        """
        SELECT a.id FROM annotator_assignment a JOIN annotator_task t ON t.id = a.task_id
        WHERE a.annotator_id = %s AND t.project_id = %s AND a.status = %s AND a.expires_at > %s
        ORDER BY a.leased_at DESC LIMIT 1
        """,
        [annotator.pk, project.pk, Assignment.Status.LEASED, connection.ops.adapt_datetimefield_value(now)],
    )
    return None if row is None else row[0]


def assignment_served(*, assignment_id: int) -> Assignment:
    """A lease with its task, caption and project: what `task_served` shows."""
    return Assignment.objects.select_related("task__caption", "task__project").get(pk=assignment_id)


def task_open_lock(
    *,
    annotator: AbstractBaseUser,
    project: Project,
    now: datetime,
    statuses: list[str],
    passed_over: list[int],
    skip_locked: bool,
) -> Task | None:
    """The first task in `project`'s queue, by priority, with a free slot that `annotator` has neither
    corrected nor skipped, row-locked, with its caption; tasks in `passed_over` are not considered.

    The caption's current detection comes along (None if it has none), as `detection_read` on the
    caption: `task_served` shows it without a statement of its own.

    The slot count here is a filter on a snapshot; `task_lease_next` counts again under the task's
    row lock before it takes the slot. Both conditions are correlated subqueries on the few tasks at
    the head of the queue (index probes on assignment (task, …)), so the query costs the same whether
    the annotator has corrected ten captions or ten thousand; the count stays out of the SELECT list,
    where PostgreSQL would evaluate it a second time.
    """
    submitted, skipped, leased = Assignment.Status.SUBMITTED, Assignment.Status.SKIPPED, Assignment.Status.LEASED
    not_passed_over = f"AND t.id NOT IN ({placeholders(passed_over)})" if passed_over else ""
    row = fetch_one(
        f"""
        SELECT {TASK_AND_CAPTION}, {select_list("d", DETECTION_COLUMNS)}
        FROM annotator_task t JOIN annotator_caption c ON c.id = t.caption_id
        LEFT JOIN annotator_detection d ON d.caption_id = c.id AND d.is_current
        WHERE t.project_id = %s AND t.status IN ({placeholders(statuses)}) {not_passed_over}
          AND NOT EXISTS (
            SELECT 1 FROM annotator_assignment finished
            WHERE finished.task_id = t.id AND finished.annotator_id = %s AND finished.status IN (%s, %s)
          )
          AND (
            SELECT COUNT(*) FROM annotator_assignment held
            WHERE held.task_id = t.id AND (held.status = %s OR (held.status = %s AND held.expires_at > %s))
          ) < %s
        ORDER BY t.priority, t.id
        LIMIT 1{for_update(of="t", skip_locked=skip_locked)}
        """,
        [
            project.pk,
            *statuses,
            *passed_over,
            *(annotator.pk, submitted, skipped),
            *(submitted, leased, connection.ops.adapt_datetimefield_value(now), project.overlap),
        ],
    )
    if row is None:
        return None
    task = _task_from_row(row)
    detection_row = row[-len(DETECTION_COLUMNS) :]
    task.caption.detection_read = (
        None if detection_row[0] is None else model_from_row(Detection, DETECTION_COLUMNS, detection_row)
    )
    return task


@dataclass(frozen=True)
class TaskSlots:
    held: int  # live leases and submitted corrections: the slots of the task's overlap taken
    own_assignment_id: int | None  # the annotator's own assignment on the task, whatever its state


def task_slots(*, task: Task, annotator: AbstractBaseUser, now: datetime) -> TaskSlots:
    """Under the task's row lock, one statement answers both questions a new lease asks: is a slot
    free, and does this annotator come back to an earlier (expired) lease of its own."""
    held, own_assignment_id = fetch_one(
        """
        SELECT COUNT(CASE WHEN status = %s OR (status = %s AND expires_at > %s) THEN 1 END),
               MAX(CASE WHEN annotator_id = %s THEN id END)
        FROM annotator_assignment WHERE task_id = %s
        """,
        [
            Assignment.Status.SUBMITTED,
            Assignment.Status.LEASED,
            connection.ops.adapt_datetimefield_value(now),
            annotator.pk,
            task.pk,
        ],
    )
    return TaskSlots(held=held, own_assignment_id=own_assignment_id)


def task_get(*, task_id: int, lock: bool = False) -> Task | None:
    """A task with its project and caption: what every call on a served task reads first. With `lock`,
    the task row (and nothing through the joins: a lock on the project would queue every submit of
    the project) stays locked until the transaction ends."""
    row = fetch_one(
        f"""
        SELECT {TASK_AND_CAPTION}, {select_list("p", PROJECT_COLUMNS)}
        FROM annotator_task t
        JOIN annotator_caption c ON c.id = t.caption_id
        JOIN annotator_project p ON p.id = t.project_id
        WHERE t.id = %s{for_update(of="t") if lock else ""}
        """,
        [task_id],
    )
    if row is None:
        return None
    task = _task_from_row(row)
    task.project = model_from_row(Project, PROJECT_COLUMNS, row[-len(PROJECT_COLUMNS) :])
    return task


def detection_current(*, caption_id: int) -> Detection | None:
    """The caption's current detection (a constraint allows one), or None."""
    row = fetch_one(
        f"""
        SELECT {select_list("d", DETECTION_COLUMNS)} FROM annotator_detection d
        WHERE d.caption_id = %s AND d.is_current
        """,
        [caption_id],
    )
    return None if row is None else model_from_row(Detection, DETECTION_COLUMNS, row)


def assignment_for_update(*, annotator: AbstractBaseUser, task: Task) -> Assignment:
    """The annotator's assignment on `task`, row-locked until the transaction ends."""
    assignment, _ = _assignment_lock(annotator=annotator, task=task, count_submitted=False)
    return assignment


def assignment_for_submit(*, annotator: AbstractBaseUser, task: Task) -> tuple[Assignment, int]:
    """`assignment_for_update`, and how many corrections of the task are in (submitted assignments).

    Read under the task's row lock, which every submit takes first, the count stays true until the
    transaction ends.
    """
    return _assignment_lock(annotator=annotator, task=task, count_submitted=True)


def _assignment_lock(*, annotator: AbstractBaseUser, task: Task, count_submitted: bool) -> tuple[Assignment, int]:
    """The locked assignment, and with `count_submitted` the task's submitted assignments in the same
    statement (0 without)."""
    submitted = (
        ", (SELECT COUNT(*) FROM annotator_assignment s WHERE s.task_id = a.task_id AND s.status = %s)"
        if count_submitted
        else ", 0"
    )
    params = [Assignment.Status.SUBMITTED] if count_submitted else []
    row = fetch_one(
        f"""
        SELECT {select_list("a", ASSIGNMENT_COLUMNS)}{submitted}
        FROM annotator_assignment a
        WHERE a.task_id = %s AND a.annotator_id = %s{for_update(of="a")}
        """,
        [*params, task.pk, annotator.pk],
    )
    if row is None:
        raise AssignmentNotFound(f"task {task.pk} was never given to {annotator}")
    return model_from_row(Assignment, ASSIGNMENT_COLUMNS, row[:-1]), row[-1]


def task_served(*, assignment: Assignment) -> dict:
    """What the annotation page shows for a lease: the TASK object of the API.

    TLDR's scores reach the page only in the arm that shows them: p_bad in `tokens`, one flag in `binary`.
    """
    task, project = assignment.task, assignment.task.project
    caption = task.caption
    if hasattr(caption, "detection_read"):  # a new lease: the queue's head query brought it along
        detection = caption.detection_read
    else:
        detection = detection_current(caption_id=caption.pk)
    if detection is not None:
        words = [dict(word) for word in detection.words]
    else:
        words = [
            {"text": text, "start": start, "end": end, "p_bad": None}
            for text, start, end in response_words(caption.text)
        ]
    if assignment.arm != Arm.TOKENS:
        for word in words:
            word["p_bad"] = None
    binary_flag = None
    if assignment.arm == Arm.BINARY and detection is not None:
        binary_flag = detection.caption_p_bad >= project.threshold
    return {
        "id": task.pk,
        "lease_expires_at": assignment.expires_at,
        "arm": assignment.arm,
        "image_url": reverse("api-image-file", kwargs={"image_id": caption.image_id}),
        "caption": {"id": caption.pk, "text": caption.text},
        "words": words,
        "binary_flag": binary_flag,
        "threshold": project.threshold,
        "served_at": assignment.served_at,
        "client_submission_id": assignment.client_submission_id,
        "draft": assignment.draft,
    }
