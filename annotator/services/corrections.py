"""Submitting a correction: idempotent, never losing the annotator's text, labelling words from the diff."""

from __future__ import annotations

import uuid
from datetime import datetime

from django.contrib.auth.models import AbstractBaseUser
from django.db import IntegrityError, transaction

from annotator.models import Assignment, Correction, Task, caption_words
from annotator.selectors.tasks import AssignmentNotFound, assignment_for_submit, task_get
from annotator.services.leases import LeaseExpired, lease_lost_detail
from annotator.services.timing import ClientEvent, active_seconds, events_merge
from annotator.sql import row_insert, row_update
from reward.alignment import word_labels_from_correction


def correction_submit(
    *,
    annotator: AbstractBaseUser,
    task_id: int,
    corrected_text: str,
    client_submission_id: uuid.UUID,
    events: list[ClientEvent],
    now: datetime,
) -> tuple[Correction, bool]:
    """The correction and whether this call created it.

    `AssignmentNotFound` if the annotator was never given the task (or there is no such task).
    The same `client_submission_id` again (a double click, a retried request) returns the first
    correction. A lease that is gone raises `LeaseExpired` carrying the text; the text is also kept
    as the assignment's draft, so if the caption comes back to this annotator the work is still there.

    Everything happens under the task's row lock, so two submits of one task run one after the other
    and the second finds the first's correction. Only while the lease is held can a correction be
    created, and then the unique (annotator, client_submission_id) constraint answers "was this id
    used already" without a query of its own: a clash (the id sent for another task, or raced in by
    another request) rolls the whole transaction back and the existing correction is returned.
    """
    try:
        with transaction.atomic():
            # Task first, then assignment: the order `task_lease_next` takes them in. The task is read
            # with its caption and project in the statement that locks it.
            task = task_get(task_id=task_id, lock=True)
            if task is None:
                raise AssignmentNotFound(f"there is no task {task_id}")
            assignment, submitted = assignment_for_submit(annotator=annotator, task=task)
            if assignment.status == Assignment.Status.LEASED and assignment.expires_at > now:
                correction = _correction_create(
                    assignment=assignment,
                    task=task,
                    submitted_before=submitted,
                    corrected_text=corrected_text,
                    client_submission_id=client_submission_id,
                    events=events,
                    now=now,
                )
                return correction, True
            if existing := _correction_by_client_id(annotator=annotator, client_submission_id=client_submission_id):
                return existing, False
            if assignment.status == Assignment.Status.LEASED:
                assignment.draft = corrected_text
                assignment.events = events_merge(assignment.events, events)
                assignment.save(update_fields=["draft", "events"])
    except IntegrityError:
        existing = _correction_by_client_id(annotator=annotator, client_submission_id=client_submission_id)
        if existing is None:
            raise
        return existing, False
    raise LeaseExpired(lease_lost_detail(assignment), corrected_text=corrected_text)


def _correction_by_client_id(*, annotator: AbstractBaseUser, client_submission_id: uuid.UUID) -> Correction | None:
    return Correction.objects.filter(annotator=annotator, client_submission_id=client_submission_id).first()


def _correction_create(
    *,
    assignment: Assignment,
    task: Task,
    submitted_before: int,
    corrected_text: str,
    client_submission_id: uuid.UUID,
    events: list[ClientEvent],
    now: datetime,
) -> Correction:
    """The correction of a held lease; the task is done with its k-th. `submitted_before`: the task's
    corrections so far, counted under the task's row lock."""
    all_events = events_merge(assignment.events, events)
    labels = word_labels_from_correction(task.caption.text, corrected_text)
    correction = Correction(
        task=task,
        project_id=task.project_id,
        assignment=assignment,
        annotator_id=assignment.annotator_id,
        original_text=task.caption.text,
        original_words=caption_words(task.caption.text),
        corrected_text=corrected_text,
        word_labels=labels.words,
        insertions=labels.insertions,
        arm=assignment.arm,
        served_at=assignment.served_at,
        submitted_at=now,
        active_seconds=active_seconds(all_events),
        client_submission_id=client_submission_id,
        events=all_events,
    )
    # Hand-written statements (see `annotator.sql`): the submit is one of the two calls annotators
    # make all day. `row_insert` skips `Correction.save`, so the two fields it derives are set above.
    row_insert(correction)
    assignment.status = Assignment.Status.SUBMITTED
    assignment.events = all_events
    assignment.draft = None
    row_update(assignment, ["status", "events", "draft"])
    if submitted_before + 1 >= task.project.overlap:
        task.status = Task.Status.DONE
        row_update(task, ["status"])
    return correction
