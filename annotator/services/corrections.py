"""Submitting a correction: idempotent, never losing the annotator's text, labelling words from the diff."""

from __future__ import annotations

import uuid
from datetime import datetime

from django.contrib.auth.models import AbstractBaseUser
from django.db import IntegrityError, transaction

from annotator.models import Assignment, Correction, Task
from annotator.selectors.tasks import assignment_for_update
from annotator.services.leases import LeaseExpired, lease_lost_detail
from annotator.services.timing import ClientEvent, active_seconds, events_merge
from reward.alignment import word_labels_from_correction


def correction_submit(
    *,
    annotator: AbstractBaseUser,
    task: Task,
    corrected_text: str,
    client_submission_id: uuid.UUID,
    events: list[ClientEvent],
    now: datetime,
) -> tuple[Correction, bool]:
    """The correction and whether this call created it.

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
            # Task first, then assignment: the order `task_lease_next` takes them in. Only the task row
            # is locked (a lock taken through a join to the project would queue every submit of the
            # project); its caption and project are the caller's, read with the task.
            list(Task.objects.select_for_update().filter(pk=task.pk).values_list("pk"))
            assignment = assignment_for_update(annotator=annotator, task=task)
            if assignment.status == Assignment.Status.LEASED and assignment.expires_at > now:
                correction = _correction_create(
                    assignment=assignment,
                    task=task,
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
    corrected_text: str,
    client_submission_id: uuid.UUID,
    events: list[ClientEvent],
    now: datetime,
) -> Correction:
    all_events = events_merge(assignment.events, events)
    labels = word_labels_from_correction(task.caption.text, corrected_text)
    correction = Correction.objects.create(
        task=task,
        assignment=assignment,
        annotator_id=assignment.annotator_id,
        original_text=task.caption.text,
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
    assignment.status = Assignment.Status.SUBMITTED
    assignment.events = all_events
    assignment.draft = None
    assignment.save(update_fields=["status", "events", "draft"])
    submitted = task.assignments.filter(status=Assignment.Status.SUBMITTED).count()
    if submitted >= task.project.overlap:
        task.status = Task.Status.DONE
        task.save(update_fields=["status"])
    return correction
