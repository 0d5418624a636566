"""32 annotators asking for the next task at once: no caption is ever served beyond its overlap."""

from __future__ import annotations

import threading
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

import pytest
from django.db import connection, connections
from django.utils import timezone

from annotator.models import Assignment, QueuePlace
from annotator.services.leases import task_lease_next
from tests.annotator.factories import AnnotatorFactory, ProjectFactory, TaskFactory

pytestmark = pytest.mark.django_db(transaction=True)

THREADS = 32


@pytest.fixture(autouse=True)
def _postgres_only():
    if connection.vendor != "postgresql":
        pytest.skip("SKIP LOCKED concurrency needs PostgreSQL: set DATABASE_URL=postgres://…")


@pytest.mark.parametrize(("overlap", "n_tasks"), [(1, 20), (2, 8), (3, 40)])
def test_32_threads_never_serve_a_task_beyond_its_overlap(overlap, n_tasks):
    people = AnnotatorFactory.create_batch(THREADS)
    project = ProjectFactory(overlap=overlap, members=people)
    TaskFactory.create_batch(n_tasks, project=project)
    start = threading.Barrier(THREADS)

    def lease(person):
        start.wait()
        try:
            return task_lease_next(annotator=person, project=project, now=timezone.now())
        finally:
            connections.close_all()

    with ThreadPoolExecutor(THREADS) as pool:
        served = [assignment for assignment in pool.map(lease, people) if assignment is not None]
    per_task = Counter(assignment.task_id for assignment in served)
    assert max(per_task.values()) <= overlap
    assert len(served) == min(THREADS, overlap * n_tasks)  # nobody told "nothing to do" while slots were free
    assert Assignment.objects.count() == len(served)
    assert len({(a.task_id, a.annotator_id) for a in served}) == len(served)


def test_one_annotator_double_clicking_next_gets_one_lease():
    person = AnnotatorFactory()
    project = ProjectFactory(members=[person])
    TaskFactory.create_batch(5, project=project)
    start = threading.Barrier(8)

    def lease(_):
        start.wait()
        try:
            return task_lease_next(annotator=person, project=project, now=timezone.now()).pk
        finally:
            connections.close_all()

    with ThreadPoolExecutor(8) as pool:
        assert len(set(pool.map(lease, range(8)))) == 1
    assert QueuePlace.objects.get(annotator=person, project=project).served == 1
