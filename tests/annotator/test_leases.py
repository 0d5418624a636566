"""The next-task queue: leases, expiry, heartbeat, resume, skip, overlap k, arms."""

from __future__ import annotations

from collections import Counter
from datetime import timedelta

import pytest

from annotator.models import Arm, Assignment, QueuePlace, Task
from annotator.services.arms import arm_draw
from annotator.services.leases import LeaseExpired, lease_renew, task_lease_next, task_skip
from tests.annotator.factories import AnnotatorFactory, ProjectFactory, TaskFactory

pytestmark = pytest.mark.django_db


def test_annotator_gets_the_first_ready_task_by_priority(annotator, project, now):
    TaskFactory(project=project, priority=5)
    first = TaskFactory(project=project, priority=1)
    assignment = task_lease_next(annotator=annotator, project=project, now=now)
    assert assignment.task == first
    assert assignment.expires_at == now + timedelta(seconds=project.lease_seconds)


def test_nothing_ready_gives_none(annotator, project, now):
    TaskFactory(project=project, status=Task.Status.DONE)
    assert task_lease_next(annotator=annotator, project=project, now=now) is None


def test_reload_resumes_the_same_lease(annotator, project, now):
    TaskFactory.create_batch(3, project=project)
    first = task_lease_next(annotator=annotator, project=project, now=now)
    again = task_lease_next(annotator=annotator, project=project, now=now + timedelta(seconds=10))
    assert again.pk == first.pk
    assert Assignment.objects.count() == 1


def test_second_annotator_never_gets_a_leased_task(annotator, project, now):
    other = AnnotatorFactory()
    project.annotators.add(other)
    TaskFactory(project=project)
    assert task_lease_next(annotator=annotator, project=project, now=now) is not None
    assert task_lease_next(annotator=other, project=project, now=now) is None


def test_overlap_k_serves_a_caption_to_k_different_annotators_only(now):
    people = AnnotatorFactory.create_batch(4)
    project = ProjectFactory(overlap=2, members=people)
    task = TaskFactory(project=project)
    served = [task_lease_next(annotator=person, project=project, now=now) for person in people]
    assert [assignment is not None for assignment in served] == [True, True, False, False]
    assert {assignment.annotator for assignment in served[:2]} == set(people[:2])
    assert task.assignments.count() == 2


def test_an_expired_lease_frees_its_slot(annotator, project, now):
    other = AnnotatorFactory()
    project.annotators.add(other)
    task = TaskFactory(project=project)
    task_lease_next(annotator=annotator, project=project, now=now)
    later = now + timedelta(seconds=project.lease_seconds + 1)
    taken = task_lease_next(annotator=other, project=project, now=later)
    assert taken.task == task


def test_own_expired_lease_comes_back_with_its_arm_and_serve_time(annotator, project, now):
    TaskFactory(project=project)
    first = task_lease_next(annotator=annotator, project=project, now=now)
    later = now + timedelta(seconds=project.lease_seconds + 60)
    again = task_lease_next(annotator=annotator, project=project, now=later)
    assert again.pk == first.pk
    assert (again.arm, again.served_at) == (first.arm, first.served_at)
    assert again.expires_at == later + timedelta(seconds=project.lease_seconds)


def test_heartbeat_extends_the_lease(annotator, project, now):
    task = TaskFactory(project=project)
    task_lease_next(annotator=annotator, project=project, now=now)
    renewed = lease_renew(annotator=annotator, task=task, now=now + timedelta(seconds=200))
    assert renewed.expires_at == now + timedelta(seconds=200 + project.lease_seconds)


def test_heartbeat_after_expiry_raises_lease_expired(annotator, project, now):
    task = TaskFactory(project=project)
    task_lease_next(annotator=annotator, project=project, now=now)
    with pytest.raises(LeaseExpired, match="expired"):
        lease_renew(annotator=annotator, task=task, now=now + timedelta(seconds=project.lease_seconds + 1))


def test_skip_frees_the_slot_and_the_annotator_never_sees_the_task_again(annotator, project, now):
    other = AnnotatorFactory()
    project.annotators.add(other)
    skipped, second = TaskFactory(project=project), TaskFactory(project=project)
    task_lease_next(annotator=annotator, project=project, now=now)
    task_skip(annotator=annotator, task=skipped)
    assert task_lease_next(annotator=annotator, project=project, now=now).task == second
    assert task_lease_next(annotator=other, project=project, now=now).task == skipped


def test_pending_tasks_wait_for_detection_unless_the_arm_shows_nothing(annotator, now):
    tokens_only = ProjectFactory(members=[annotator], arm_weight_binary=0, arm_weight_none=0)
    TaskFactory(project=tokens_only, status=Task.Status.PENDING)
    assert task_lease_next(annotator=annotator, project=tokens_only, now=now) is None
    none_only = ProjectFactory(members=[annotator], arm_weight_tokens=0, arm_weight_binary=0)
    pending = TaskFactory(project=none_only, status=Task.Status.PENDING)
    assert task_lease_next(annotator=annotator, project=none_only, now=now).task == pending


def test_arms_follow_the_project_ratio_in_every_block_per_annotator(now):
    people = AnnotatorFactory.create_batch(2)
    project = ProjectFactory(members=people, arm_weight_tokens=2, arm_weight_binary=1, arm_weight_none=1)
    TaskFactory.create_batch(16, project=project)
    for person in people:
        arms = []
        for step in range(8):
            assignment = task_lease_next(annotator=person, project=project, now=now + timedelta(seconds=step))
            arms.append(assignment.arm)
            Assignment.objects.filter(pk=assignment.pk).update(status=Assignment.Status.SUBMITTED)
        for block in (arms[:4], arms[4:]):
            assert Counter(block) == {Arm.TOKENS: 2, Arm.BINARY: 1, Arm.NONE: 1}


def test_a_skipped_task_does_not_use_up_its_arm(annotator, project, now):
    TaskFactory.create_batch(2, project=project)
    expected = arm_draw(annotator=annotator, project=project, served=0)  # its first task
    first = task_lease_next(annotator=annotator, project=project, now=now)
    task_skip(annotator=annotator, task=first.task)
    second = task_lease_next(annotator=annotator, project=project, now=now)
    assert first.arm == second.arm == expected


def _served(annotator, project) -> int:
    return QueuePlace.objects.get(annotator=annotator, project=project).served


def test_served_counts_new_leases_and_not_resumes_skips_returns_or_empty_queues(annotator, project, now):
    first_task, second_task = TaskFactory.create_batch(2, project=project)
    first = task_lease_next(annotator=annotator, project=project, now=now)
    assert (first.task, _served(annotator, project)) == (first_task, 1)
    task_lease_next(annotator=annotator, project=project, now=now)  # a reload resumes it
    assert _served(annotator, project) == 1
    task_skip(annotator=annotator, task=first.task)
    assert _served(annotator, project) == 0
    second = task_lease_next(annotator=annotator, project=project, now=now)
    assert (second.task, _served(annotator, project)) == (second_task, 1)
    later = now + timedelta(seconds=project.lease_seconds + 1)  # its lease expired and nobody took the task
    assert task_lease_next(annotator=annotator, project=project, now=later).pk == second.pk
    assert _served(annotator, project) == 1
    Assignment.objects.filter(pk=second.pk).update(status=Assignment.Status.SUBMITTED)
    assert task_lease_next(annotator=annotator, project=project, now=later) is None
    assert _served(annotator, project) == 1
    assert not QueuePlace.objects.exclude(project=project).exists()


def test_the_arm_is_drawn_at_the_annotators_place_however_it_got_there(annotator, project, now):
    """The count, not the rows: a long history costs "next" nothing, and deleted rows leave the place as it is."""
    TaskFactory.create_batch(2, project=project)
    first_arm = arm_draw(annotator=annotator, project=project, served=0)  # what counting its (no) rows gives
    place = next(n for n in range(1, 100) if arm_draw(annotator=annotator, project=project, served=n) != first_arm)
    QueuePlace.objects.create(annotator=annotator, project=project, served=place)
    assignment = task_lease_next(annotator=annotator, project=project, now=now)
    assert assignment.arm == arm_draw(annotator=annotator, project=project, served=place)
    assert _served(annotator, project) == place + 1
