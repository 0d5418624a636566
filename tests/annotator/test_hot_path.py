"""The two calls annotators make all day, next task and submit, as API clients send them (token auth):
a fixed, small number of statements however long an annotator's history, rows written as the ORM
reads them back, and DRF's token errors unchanged."""

from __future__ import annotations

import uuid

import pytest
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from annotator.models import Arm, Assignment, Correction, Task
from tests.annotator.factories import (
    AdminFactory,
    AnnotatorFactory,
    DetectionFactory,
    ProjectFactory,
    TaskFactory,
    UserFactory,
)

pytestmark = pytest.mark.django_db

# Statements per call, the transaction's BEGIN and COMMIT (or savepoint) included. Next: token and role,
# project, BEGIN, the annotator's queue place (counted and locked), its current lease, the queue's head
# with its caption's detection (locked), the head's slots, the lease's INSERT, COMMIT. Submit: token and
# role, BEGIN, the task with its caption and project (locked), the assignment with the task's count of
# corrections, the correction's INSERT, the assignment's UPDATE, the task's UPDATE (done: overlap 1
# here), COMMIT.
NEXT_STATEMENTS = 9
SUBMIT_STATEMENTS = 8
# A logged-in browser's calls read its session and then its user with the role, where a token's read both.
SESSION_STATEMENTS_MORE = 1


def _token_client(user) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {Token.objects.create(user=user).key}")
    return client


def _correction_of(task: dict) -> dict:
    return {
        "corrected_text": task["caption"]["text"].replace("red", "green"),
        "client_submission_id": task["client_submission_id"],
        "events": [{"type": "shown", "t_ms": 1_700_000_000_000}, {"type": "submit", "t_ms": 1_700_000_004_000}],
    }


def test_next_and_submit_take_the_same_few_statements_however_long_the_history(annotator, django_assert_num_queries):
    project = ProjectFactory(members=[annotator], overlap=1)
    for task in TaskFactory.create_batch(7, project=project):
        DetectionFactory(caption=task.caption)
    client = _token_client(annotator)
    for _ in range(7):
        with django_assert_num_queries(NEXT_STATEMENTS):
            response = client.post(f"/api/projects/{project.pk}/tasks/next/")
        assert response.status_code == 200
        task = response.json()["task"]
        with django_assert_num_queries(SUBMIT_STATEMENTS):
            response = client.post(f"/api/tasks/{task['id']}/submit/", _correction_of(task), format="json")
        assert response.status_code == 201
    assert Correction.objects.count() == 7
    assert set(Task.objects.values_list("status", flat=True)) == {Task.Status.DONE}


def test_the_lease_and_the_correction_read_back_as_they_were_served_and_sent(annotator):
    project = ProjectFactory(members=[annotator], overlap=2, arm_weight_binary=0, arm_weight_none=0)
    DetectionFactory(caption=TaskFactory(project=project, caption__text="a red circle").caption)
    client = _token_client(annotator)
    task = client.post(f"/api/projects/{project.pk}/tasks/next/").json()["task"]
    lease = Assignment.objects.get()
    assert (lease.task_id, lease.annotator, lease.arm) == (task["id"], annotator, Arm.TOKENS)
    assert lease.client_submission_id == uuid.UUID(task["client_submission_id"])
    assert lease.served_at == lease.leased_at and lease.events == [] and lease.draft is None
    assert client.post(f"/api/tasks/{task['id']}/submit/", _correction_of(task), format="json").status_code == 201
    correction = Correction.objects.get()
    assert (correction.project_id, correction.assignment, correction.annotator) == (project.pk, lease, annotator)
    assert (correction.original_text, correction.corrected_text) == ("a red circle", "a green circle")
    assert correction.original_words == 3
    assert [word["label"] for word in correction.word_labels] == ["good", "bad", "good"]
    assert correction.client_submission_id == lease.client_submission_id
    assert (correction.served_at, correction.active_seconds, len(correction.events)) == (lease.served_at, 4.0, 2)
    lease.refresh_from_db()
    assert lease.status == Assignment.Status.SUBMITTED and lease.events == correction.events
    assert Task.objects.get().status == Task.Status.READY  # one of its two corrections


def test_a_wrong_token_or_an_inactive_user_is_refused_as_drf_refuses_them(annotator, project):
    # 403, not 401: session authentication comes first, and it sends no WWW-Authenticate challenge.
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION="Token not-a-token")
    response = client.post(f"/api/projects/{project.pk}/tasks/next/")
    assert (response.status_code, response.json()) == (403, {"detail": "Invalid token."})
    client = _token_client(annotator)
    annotator.is_active = False
    annotator.save(update_fields=["is_active"])
    response = client.post(f"/api/projects/{project.pk}/tasks/next/")
    assert (response.status_code, response.json()) == (403, {"detail": "User inactive or deleted."})


def test_a_token_without_the_annotator_role_is_refused_and_an_admins_is_not(project):
    TaskFactory(project=project)
    outsider = UserFactory()
    project.annotators.add(outsider)
    response = _token_client(outsider).post(f"/api/projects/{project.pk}/tasks/next/")
    assert response.status_code == 403 and "annotator" in response.json()["detail"]
    # An admin is neither in the group nor a member, and may take tasks of every project.
    assert _token_client(AdminFactory()).post(f"/api/projects/{project.pk}/tasks/next/").status_code == 200


def test_a_token_of_an_annotator_outside_the_project_gets_404(project):
    TaskFactory(project=project)
    response = _token_client(AnnotatorFactory()).post(f"/api/projects/{project.pk}/tasks/next/")
    assert response.status_code == 404
    assert not Assignment.objects.exists()


def test_a_logged_in_browser_takes_one_statement_more_than_a_token(annotator, django_assert_num_queries):
    project = ProjectFactory(members=[annotator], overlap=1)
    for task in TaskFactory.create_batch(2, project=project):
        DetectionFactory(caption=task.caption)
    client = APIClient()
    client.force_login(annotator)
    for _ in range(2):
        with django_assert_num_queries(NEXT_STATEMENTS + SESSION_STATEMENTS_MORE):
            task = client.post(f"/api/projects/{project.pk}/tasks/next/").json()["task"]
        with django_assert_num_queries(SUBMIT_STATEMENTS + SESSION_STATEMENTS_MORE):
            response = client.post(f"/api/tasks/{task['id']}/submit/", _correction_of(task), format="json")
        assert response.status_code == 201


def test_a_logged_in_browser_loses_the_role_at_its_next_call_and_old_sessions_stay_signed_in(project):
    TaskFactory.create_batch(2, project=project)
    person = AnnotatorFactory()
    project.annotators.add(person)
    client = APIClient()
    client.force_login(person)
    assert client.post(f"/api/projects/{project.pk}/tasks/next/").status_code == 200
    person.groups.clear()
    response = client.post(f"/api/projects/{project.pk}/tasks/next/")
    assert response.status_code == 403 and "annotator" in response.json()["detail"]
    # A session from before RoleModelBackend names Django's ModelBackend: still signed in, role checked.
    other = AnnotatorFactory()
    project.annotators.add(other)
    old_session = APIClient()
    old_session.force_login(other, backend="django.contrib.auth.backends.ModelBackend")
    assert old_session.post(f"/api/projects/{project.pk}/tasks/next/").status_code == 200
    other.is_active = False
    other.save(update_fields=["is_active"])
    client.force_login(other)
    assert client.post(f"/api/projects/{project.pk}/tasks/next/").status_code == 403
