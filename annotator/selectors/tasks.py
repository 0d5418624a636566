"""Reads of the queue: which tasks an annotator may be given, and what a served task shows."""

from __future__ import annotations

from datetime import datetime

from django.contrib.auth.models import AbstractBaseUser
from django.db.models import Count, Exists, OuterRef, Q, QuerySet, Subquery
from django.db.models.functions import Coalesce
from django.urls import reverse

from annotator.models import Arm, Assignment, Detection, Project, Task
from reward.words import response_words


class AssignmentNotFound(Exception):
    """The annotator was never given this task."""


def assignment_live_q(now: datetime, prefix: str = "") -> Q:
    """Assignments that hold one of a task's k slots: a live lease or a submitted correction."""
    return Q(**{f"{prefix}status": Assignment.Status.SUBMITTED}) | Q(
        **{f"{prefix}status": Assignment.Status.LEASED, f"{prefix}expires_at__gt": now}
    )


def task_assignments_live_or_own(*, task: Task, annotator: AbstractBaseUser, now: datetime) -> list[Assignment]:
    """The task's assignments that hold a slot, and the annotator's own one whatever its state.

    One query under the task's row lock answers both questions a new lease asks: is a slot free, and
    does this annotator come back to an earlier (expired) lease of its own.
    """
    return list(task.assignments.filter(assignment_live_q(now) | Q(annotator=annotator)))


def tasks_open_for(
    *, annotator: AbstractBaseUser, project: Project, now: datetime, statuses: list[str]
) -> QuerySet[Task]:
    """Tasks of `project` with a free slot that `annotator` has neither corrected nor skipped.

    The slot count here is a filter on a snapshot; `task_lease_next` counts again under the task's
    row lock before it takes the slot. Both conditions are correlated subqueries on the few tasks
    at the head of the queue (index probes on assignment (task, …)), so the query costs the same
    whether the annotator has corrected ten captions or ten thousand; `alias`, not `annotate`, keeps
    the count out of the SELECT list, where PostgreSQL would evaluate it a second time.
    """
    slots_taken = (
        Assignment.objects.filter(assignment_live_q(now), task=OuterRef("pk"))
        .order_by()
        .values("task")
        .annotate(n=Count("pk"))
        .values("n")
    )
    finished_by_annotator = Assignment.objects.filter(
        task=OuterRef("pk"),
        annotator=annotator,
        status__in=[Assignment.Status.SUBMITTED, Assignment.Status.SKIPPED],
    )
    return (
        Task.objects.filter(project=project, status__in=statuses)
        .filter(~Exists(finished_by_annotator))
        .alias(slots_taken=Coalesce(Subquery(slots_taken), 0))
        .filter(slots_taken__lt=project.overlap)
        .order_by("priority", "id")
    )


def assignment_current(*, annotator: AbstractBaseUser, project: Project, now: datetime) -> Assignment | None:
    """The annotator's unexpired lease in `project`: what a reload resumes.

    Asked on every "next", and answered "none" almost every time: the id alone is read first, a
    narrow query, and the lease with its task and caption only when there is one.
    """
    assignment_id = (
        Assignment.objects.filter(
            annotator=annotator, task__project=project, status=Assignment.Status.LEASED, expires_at__gt=now
        )
        .order_by("-leased_at")
        .values_list("pk", flat=True)
        .first()
    )
    if assignment_id is None:
        return None
    return Assignment.objects.select_related("task__caption", "task__project").get(pk=assignment_id)


def detection_current(*, caption_id: int) -> Detection | None:
    return Detection.objects.filter(caption_id=caption_id, is_current=True).first()


def assignment_for_update(*, annotator: AbstractBaseUser, task: Task) -> Assignment:
    """The annotator's assignment on `task`, row-locked until the transaction ends."""
    assignment = Assignment.objects.select_for_update().filter(task=task, annotator=annotator).first()
    if assignment is None:
        raise AssignmentNotFound(f"task {task.pk} was never given to {annotator}")
    return assignment


def task_served(*, assignment: Assignment) -> dict:
    """What the annotation page shows for a lease: the TASK object of the API.

    TLDR's scores reach the page only in the arm that shows them: p_bad in `tokens`, one flag in `binary`.
    """
    task, project = assignment.task, assignment.task.project
    caption = task.caption
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
