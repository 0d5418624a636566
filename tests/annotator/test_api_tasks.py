"""The annotation page's API contract: next, heartbeat, events, submit, skip, image file."""

from __future__ import annotations

import uuid
from datetime import timedelta

import pytest
from django.utils import timezone

from annotator.models import Arm, Assignment, Correction
from tests.annotator.factories import DetectionFactory, ProjectFactory, TaskFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def client_of(api, annotator):
    api.force_authenticate(annotator)
    return api


def _tokens_project(annotator):
    return ProjectFactory(members=[annotator], arm_weight_binary=0, arm_weight_none=0)


def test_next_returns_the_task_with_highlights_in_the_tokens_arm(client_of, annotator):
    project = _tokens_project(annotator)
    task = TaskFactory(project=project, caption__text="a red circle")
    DetectionFactory(caption=task.caption)
    response = client_of.post(f"/api/projects/{project.pk}/tasks/next/")
    assert response.status_code == 200
    body = response.json()["task"]
    assert set(body) == {
        "id",
        "lease_expires_at",
        "arm",
        "image_url",
        "caption",
        "words",
        "binary_flag",
        "threshold",
        "served_at",
        "client_submission_id",
        "draft",
    }
    assert body["id"] == task.pk and body["arm"] == "tokens" and body["binary_flag"] is None
    assert body["caption"] == {"id": task.caption.pk, "text": "a red circle"}
    assert [(word["text"], word["p_bad"]) for word in body["words"]] == [("a", 0.1), ("red", 0.9), ("circle", 0.1)]
    assert uuid.UUID(body["client_submission_id"]) == Assignment.objects.get().client_submission_id
    image = client_of.get(body["image_url"])
    assert image.status_code == 200 and image["Content-Type"] == "image/png"


def test_binary_arm_shows_one_flag_and_no_word_scores(client_of, annotator):
    project = ProjectFactory(members=[annotator], arm_weight_tokens=0, arm_weight_none=0, threshold=0.5)
    task = TaskFactory(project=project, caption__text="a red circle")
    DetectionFactory(caption=task.caption)
    body = client_of.post(f"/api/projects/{project.pk}/tasks/next/").json()["task"]
    assert body["arm"] == Arm.BINARY and body["binary_flag"] is True
    assert all(word["p_bad"] is None for word in body["words"])


def test_next_is_204_when_nothing_is_ready(client_of, project):
    assert client_of.post(f"/api/projects/{project.pk}/tasks/next/").status_code == 204


def test_submit_then_same_id_again_returns_the_same_correction(client_of, project):
    TaskFactory(project=project)
    task = client_of.post(f"/api/projects/{project.pk}/tasks/next/").json()["task"]
    body = {
        "corrected_text": "a blue circle",
        "client_submission_id": task["client_submission_id"],
        "events": [{"type": "shown", "t_ms": 1_700_000_000_000}, {"type": "submit", "t_ms": 1_700_000_003_000}],
    }
    first = client_of.post(f"/api/tasks/{task['id']}/submit/", body, format="json")
    second = client_of.post(f"/api/tasks/{task['id']}/submit/", body, format="json")
    assert (first.status_code, second.status_code) == (201, 200)
    assert (
        first.json()
        == second.json()
        == {"correction_id": Correction.objects.get().pk, "next": f"/api/projects/{project.pk}/tasks/next/"}
    )
    assert Correction.objects.get().active_seconds == 3.0


def test_submit_after_expiry_is_409_with_the_text_echoed(client_of, project):
    TaskFactory(project=project)
    task = client_of.post(f"/api/projects/{project.pk}/tasks/next/").json()["task"]
    Assignment.objects.update(expires_at=timezone.now() - timedelta(seconds=1))
    body = {"corrected_text": "my fix", "client_submission_id": task["client_submission_id"]}
    response = client_of.post(f"/api/tasks/{task['id']}/submit/", body, format="json")
    assert response.status_code == 409
    assert response.json()["code"] == "lease_expired"
    assert response.json()["corrected_text"] == "my fix"
    assert "next task" in response.json()["detail"]


def test_heartbeat_extends_and_then_409_after_expiry(client_of, project):
    TaskFactory(project=project)
    task = client_of.post(f"/api/projects/{project.pk}/tasks/next/").json()["task"]
    assert "lease_expires_at" in client_of.post(f"/api/tasks/{task['id']}/heartbeat/").json()
    Assignment.objects.update(expires_at=timezone.now() - timedelta(seconds=1))
    response = client_of.post(f"/api/tasks/{task['id']}/heartbeat/")
    assert response.status_code == 409 and response.json()["code"] == "lease_expired"


def test_events_are_recorded_and_skip_gives_the_task_back(client_of, project):
    TaskFactory(project=project)
    task = client_of.post(f"/api/projects/{project.pk}/tasks/next/").json()["task"]
    events = {"events": [{"type": "shown", "t_ms": 1_700_000_000_000, "data": {"viewport": 1200}}]}
    assert client_of.post(f"/api/tasks/{task['id']}/events/", events, format="json").status_code == 204
    assert Assignment.objects.get().events[0]["data"] == {"viewport": 1200}
    assert client_of.post(f"/api/tasks/{task['id']}/skip/").status_code == 204
    assert Assignment.objects.get().status == Assignment.Status.SKIPPED
    assert client_of.post(f"/api/projects/{project.pk}/tasks/next/").status_code == 204


def test_malformed_submit_is_400(client_of, project):
    TaskFactory(project=project)
    task = client_of.post(f"/api/projects/{project.pk}/tasks/next/").json()["task"]
    response = client_of.post(f"/api/tasks/{task['id']}/submit/", {"corrected_text": "x"}, format="json")
    assert response.status_code == 400 and "client_submission_id" in response.json()


def test_another_annotators_task_is_404(client_of, project):
    task = TaskFactory(project=project)
    for action in ("heartbeat", "skip", "submit", "events"):
        assert (
            client_of.post(
                f"/api/tasks/{task.pk}/{action}/",
                {"events": [], "corrected_text": "x", "client_submission_id": str(uuid.uuid4())},
                format="json",
            ).status_code
            == 404
        )


def test_session_clients_need_csrf(annotator, project):
    from rest_framework.test import APIClient

    client = APIClient(enforce_csrf_checks=True)
    client.force_login(annotator)
    assert client.post(f"/api/projects/{project.pk}/tasks/next/").status_code == 403


def test_a_task_that_does_not_exist_is_404_and_nothing_is_written(client_of, project):
    body = {"events": [], "corrected_text": "x", "client_submission_id": str(uuid.uuid4())}
    for action in ("heartbeat", "skip", "submit", "events"):
        assert client_of.post(f"/api/tasks/987654/{action}/", body, format="json").status_code == 404
    assert not Correction.objects.exists()
