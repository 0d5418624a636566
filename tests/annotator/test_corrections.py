"""Submitting corrections: labels from the diff, idempotency, lease expiry keeps the text, active time."""

from __future__ import annotations

import uuid
from datetime import timedelta

import pytest

from annotator.models import Correction, Task
from annotator.services.corrections import correction_submit
from annotator.services.leases import LeaseExpired, events_record, task_lease_next
from tests.annotator.factories import AnnotatorFactory, ProjectFactory, TaskFactory

pytestmark = pytest.mark.django_db

T0 = 1_700_000_000_000


def _lease(annotator, project, now):
    TaskFactory(project=project, caption__text="two red circles left of a blue square")
    return task_lease_next(annotator=annotator, project=project, now=now)


def test_submit_stores_word_labels_insertions_arm_and_timing(annotator, project, now):
    assignment = _lease(annotator, project, now)
    events = [{"type": "shown", "t_ms": T0, "data": {}}, {"type": "edit", "t_ms": T0 + 4_000, "data": {}}]
    correction, created = correction_submit(
        annotator=annotator,
        task_id=assignment.task_id,
        corrected_text="two green circles left of a big blue square",
        client_submission_id=assignment.client_submission_id,
        events=events,
        now=now + timedelta(seconds=5),
    )
    assert created
    assert [word["label"] for word in correction.word_labels] == ["good", "bad"] + ["good"] * 6
    assert correction.insertions == [{"after_word_index": 5, "text": "big"}]
    assert correction.arm == assignment.arm
    assert correction.active_seconds == 4.0
    # What the speed-up report reads without a join or the text.
    assert correction.project_id == project.pk
    assert correction.original_words == 8
    assert (correction.served_at, correction.submitted_at) == (now, now + timedelta(seconds=5))
    assert Task.objects.get().status == Task.Status.DONE


def test_double_submit_makes_one_correction(annotator, project, now):
    assignment = _lease(annotator, project, now)
    arguments = {
        "annotator": annotator,
        "task_id": assignment.task_id,
        "corrected_text": "two red circles",
        "client_submission_id": assignment.client_submission_id,
        "events": [],
        "now": now,
    }
    first, created_first = correction_submit(**arguments)
    second, created_second = correction_submit(**arguments)
    assert (created_first, created_second) == (True, False)
    assert first.pk == second.pk
    assert Correction.objects.count() == 1


def test_submit_after_the_lease_expired_raises_and_keeps_the_text_as_draft(annotator, project, now):
    assignment = _lease(annotator, project, now)
    late = now + timedelta(seconds=project.lease_seconds + 1)
    with pytest.raises(LeaseExpired) as raised:
        correction_submit(
            annotator=annotator,
            task_id=assignment.task_id,
            corrected_text="my careful fix",
            client_submission_id=assignment.client_submission_id,
            events=[],
            now=late,
        )
    assert raised.value.corrected_text == "my careful fix"
    assert "next task" in raised.value.detail
    assert Correction.objects.count() == 0
    resumed = task_lease_next(annotator=annotator, project=project, now=late)
    assert (resumed.pk, resumed.draft) == (assignment.pk, "my careful fix")


def test_submit_after_someone_else_took_the_expired_slot_is_refused(annotator, project, now):
    other = AnnotatorFactory()
    project.annotators.add(other)
    assignment = _lease(annotator, project, now)
    late = now + timedelta(seconds=project.lease_seconds + 1)
    assert task_lease_next(annotator=other, project=project, now=late).task == assignment.task
    with pytest.raises(LeaseExpired):
        correction_submit(
            annotator=annotator,
            task_id=assignment.task_id,
            corrected_text="too late",
            client_submission_id=assignment.client_submission_id,
            events=[],
            now=late,
        )


def test_task_is_done_only_after_k_corrections(now):
    people = AnnotatorFactory.create_batch(2)
    project = ProjectFactory(overlap=2, members=people)
    task = TaskFactory(project=project)
    for person in people:
        assignment = task_lease_next(annotator=person, project=project, now=now)
        correction_submit(
            annotator=person,
            task_id=task.pk,
            corrected_text="fixed",
            client_submission_id=assignment.client_submission_id,
            events=[],
            now=now,
        )
        task.refresh_from_db()
        assert task.status == (Task.Status.DONE if person == people[-1] else Task.Status.READY)


def test_events_across_a_reload_are_counted_once(annotator, project, now):
    assignment = _lease(annotator, project, now)
    first_load = [{"type": "shown", "t_ms": T0, "data": {}}, {"type": "edit", "t_ms": T0 + 10_000, "data": {}}]
    events_record(annotator=annotator, task=assignment.task, events=first_load)
    events_record(annotator=annotator, task=assignment.task, events=first_load)  # a retried request
    # The page is reloaded 5 s later; the submit resends the first load's events as well.
    second_load = [
        {"type": "shown", "t_ms": T0 + 15_000, "data": {}},
        {"type": "submit", "t_ms": T0 + 20_000, "data": {}},
    ]
    correction, _ = correction_submit(
        annotator=annotator,
        task_id=assignment.task_id,
        corrected_text="two red circles",
        client_submission_id=assignment.client_submission_id,
        events=first_load + second_load,
        now=now,
    )
    assert correction.active_seconds == 20.0
    assert len(correction.events) == 4


def test_different_client_id_after_submit_is_refused_not_duplicated(annotator, project, now):
    assignment = _lease(annotator, project, now)
    correction_submit(
        annotator=annotator,
        task_id=assignment.task_id,
        corrected_text="first",
        client_submission_id=assignment.client_submission_id,
        events=[],
        now=now,
    )
    with pytest.raises(LeaseExpired, match="already submitted"):
        correction_submit(
            annotator=annotator,
            task_id=assignment.task_id,
            corrected_text="second",
            client_submission_id=uuid.uuid4(),
            events=[],
            now=now,
        )
    assert Correction.objects.count() == 1
