"""Migrations that move data: what was stored before them is there after, in its new form."""

from __future__ import annotations

import hashlib
import uuid

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor
from django.utils import timezone

pytestmark = pytest.mark.django_db(transaction=True)

BEFORE_REPORT_COLUMNS = [("annotator", "0007_job_training")]
AFTER_REPORT_COLUMNS = [("annotator", "0010_correction_report_columns_required")]
AFTER_QUEUE_PLACE = [("annotator", "0011_queue_place")]


def _migrate(targets: list[tuple[str, str]]):
    executor = MigrationExecutor(connection)
    executor.loader.build_graph()
    executor.migrate(targets)
    return executor.loader.project_state(targets).apps


def test_report_columns_are_filled_from_each_corrections_task_and_text():
    apps = _migrate(BEFORE_REPORT_COLUMNS)
    user = apps.get_model("auth", "User").objects.create(username="before-0008")
    projects = [apps.get_model("annotator", "Project").objects.create(name=name) for name in ("one", "two")]
    now = timezone.now()
    expected = {}
    for index, (project, text) in enumerate(
        zip(projects, ["two red circles", "  a  blue\nsquare above it "], strict=True)
    ):
        task = _task_with_caption(apps, project=project, name=str(index), text=text)
        assignment = apps.get_model("annotator", "Assignment").objects.create(
            task=task, annotator=user, arm="tokens", status="submitted", leased_at=now, expires_at=now, served_at=now
        )
        correction = apps.get_model("annotator", "Correction").objects.create(
            task=task,
            assignment=assignment,
            annotator=user,
            original_text=text,
            corrected_text=text,
            word_labels=[],
            arm="tokens",
            served_at=now,
            submitted_at=now,
            active_seconds=1.0,
            client_submission_id=uuid.uuid4(),
        )
        expected[correction.pk] = (project.pk, len(text.split()))

    apps = _migrate(AFTER_REPORT_COLUMNS)
    Correction = apps.get_model("annotator", "Correction")
    assert {c.pk: (c.project_id, c.original_words) for c in Correction.objects.all()} == expected
    assert sorted(words for _, words in expected.values()) == [3, 5]
    _migrate(_latest())


def test_queue_places_count_each_annotators_assignments_per_project_except_skipped_ones():
    apps = _migrate(AFTER_REPORT_COLUMNS)
    User, Project = apps.get_model("auth", "User"), apps.get_model("annotator", "Project")
    Assignment = apps.get_model("annotator", "Assignment")
    ann, bob = (User.objects.create(username=name) for name in ("ann-0011", "bob-0011"))
    one, two = (Project.objects.create(name=name) for name in ("one-0011", "two-0011"))
    now = timezone.now()
    statuses = {
        (ann, one): ["submitted", "submitted", "leased", "skipped"],
        (ann, two): ["skipped"],
        (bob, two): ["leased", "submitted"],
    }
    for index, ((user, project), user_statuses) in enumerate(statuses.items()):
        for number, status in enumerate(user_statuses):
            task = _task_with_caption(apps, project=project, name=f"{index}-{number}", text="a")
            Assignment.objects.create(
                task=task, annotator=user, arm="tokens", status=status, leased_at=now, expires_at=now, served_at=now
            )

    apps = _migrate(AFTER_QUEUE_PLACE)
    places = apps.get_model("annotator", "QueuePlace").objects.values_list(
        "annotator__username", "project__name", "served"
    )
    assert sorted(places) == [("ann-0011", "one-0011", 3), ("bob-0011", "two-0011", 2)]
    _migrate(_latest())


def _task_with_caption(apps, *, project, name: str, text: str):
    """A task of `project` on a caption of a fresh 8 x 8 image, made with the historical models of `apps`."""
    image = apps.get_model("annotator", "Image").objects.create(
        project=project,
        file=f"images/{name}.png",
        sha256=hashlib.sha256(name.encode()).hexdigest(),
        width=8,
        height=8,
        original_name=f"{name}.png",
    )
    caption = apps.get_model("annotator", "Caption").objects.create(image=image, text=text, source="import")
    return apps.get_model("annotator", "Task").objects.create(project=project, caption=caption)


def _latest() -> list[tuple[str, str]]:
    executor = MigrationExecutor(connection)
    return [key for key in executor.loader.graph.leaf_nodes() if key[0] == "annotator"]
