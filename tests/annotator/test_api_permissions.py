"""Every endpoint for anonymous, annotator and admin: who may call it, and who is refused."""

from __future__ import annotations

import io

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from annotator.models import Assignment, Job, ModelVersion
from annotator.services.leases import task_lease_next
from tests.annotator.factories import ModelVersionFactory, TaskFactory, png_bytes

pytestmark = pytest.mark.django_db

DENIED = {401, 403}


@pytest.fixture
def world(annotator, admin_user, project, now):
    """A project both people may use; the annotator and the admin each hold a lease on a task."""
    project.annotators.add(admin_user)
    TaskFactory.create_batch(2, project=project)
    own = task_lease_next(annotator=annotator, project=project, now=now)
    admins = task_lease_next(annotator=admin_user, project=project, now=now)
    version = ModelVersionFactory()
    ModelVersionFactory(status=ModelVersion.Status.ACTIVE)  # a reward model to retrain from
    queued = Job.objects.create(kind=Job.Kind.EXPORT, payload={"project_id": project.pk})
    return {"project": project, "own": own, "admins": admins, "version": version, "queued": queued}


def _calls(world, role):
    """(name, method, url, body, format) of every endpoint; task calls use the caller's own lease."""
    project = world["project"]
    lease = world["admins"] if role == "admin" else world["own"]
    task = lease.task
    submit = {"corrected_text": "fixed", "client_submission_id": str(lease.client_submission_id), "events": []}
    return [
        ("project list", "get", "/api/projects/", None, None),
        ("project detail", "get", f"/api/projects/{project.pk}/", None, None),
        ("project create", "post", "/api/projects/", {"name": f"new by {role}"}, "json"),
        ("project update", "patch", f"/api/projects/{project.pk}/", {"threshold": 0.4}, "json"),
        ("task next", "post", f"/api/projects/{project.pk}/tasks/next/", None, None),
        ("heartbeat", "post", f"/api/tasks/{task.pk}/heartbeat/", None, None),
        ("events", "post", f"/api/tasks/{task.pk}/events/", {"events": []}, "json"),
        ("image file", "get", f"/api/images/{task.caption.image_id}/file/", None, None),
        ("submit", "post", f"/api/tasks/{task.pk}/submit/", submit, "json"),
        ("skip", "post", f"/api/tasks/{task.pk}/skip/", None, None),
        ("corrections", "get", "/api/corrections/", None, None),
        ("image list", "get", f"/api/projects/{project.pk}/images/", None, None),
        (
            "image upload",
            "post",
            f"/api/projects/{project.pk}/images/",
            {"files": [SimpleUploadedFile("up.png", png_bytes((9, 9)), "image/png")]},
            "multipart",
        ),
        (
            "caption import",
            "post",
            f"/api/projects/{project.pk}/captions/import/",
            {"file": io.BytesIO(b'{"image": "nothing.png", "caption": "x"}\n'), "format": "jsonl"},
            "multipart",
        ),
        ("caption generate", "post", f"/api/projects/{project.pk}/captions/generate/", {}, "json"),
        ("job list", "get", "/api/jobs/", None, None),
        ("job cancel state", "get", f"/api/jobs/{world['queued'].pk}/cancel/", None, None),
        ("job cancel", "post", f"/api/jobs/{world['queued'].pk}/cancel/", None, None),
        ("retrain", "post", f"/api/projects/{project.pk}/retrain/", {"kind": "reward", "max_steps": 1}, "json"),
        ("model versions", "get", "/api/model-versions/", None, None),
        ("model activate", "post", f"/api/model-versions/{world['version'].pk}/activate/", None, None),
        ("project delete", "delete", f"/api/projects/{project.pk}/", None, None),
    ]


ANNOTATOR_ALLOWED = {
    "project list",
    "project detail",
    "task next",
    "heartbeat",
    "events",
    "image file",
    "submit",
    "skip",
    "corrections",
}


@pytest.mark.parametrize("role", ["anonymous", "annotator", "admin"])
def test_permission_matrix(api, world, annotator, admin_user, role, settings):
    settings.TLDR_TRAIN_MIN_CORRECTIONS = 0
    if role != "anonymous":
        api.force_authenticate(annotator if role == "annotator" else admin_user)
    for name, method, url, body, body_format in _calls(world, role):
        kwargs = {"format": body_format} if body_format else {}
        response = getattr(api, method)(url, body, **kwargs) if body is not None else getattr(api, method)(url)
        if role == "anonymous":
            assert response.status_code in DENIED, name
        elif role == "annotator" and name not in ANNOTATOR_ALLOWED:
            assert response.status_code == 403, name
        else:
            assert response.status_code < 300 or (name == "caption import" and response.status_code == 400), (
                name,
                response.status_code,
                getattr(response, "data", None),
            )
    world["queued"].refresh_from_db()
    assert world["queued"].status == (Job.Status.CANCELLED if role == "admin" else Job.Status.QUEUED)
    assert Job.objects.filter(kind=Job.Kind.REWARD_TRAIN).count() == (1 if role == "admin" else 0)


def test_annotator_sees_only_its_own_corrections_and_projects(api, world, annotator, admin_user, now):
    from annotator.services.corrections import correction_submit

    for lease in (world["own"], world["admins"]):
        correction_submit(
            annotator=lease.annotator,
            task_id=lease.task_id,
            corrected_text="fixed",
            client_submission_id=lease.client_submission_id,
            events=[],
            now=now,
        )
    api.force_authenticate(annotator)
    corrections = api.get("/api/corrections/").json()
    assert corrections["count"] == 1 and corrections["results"][0]["annotator"] == annotator.pk
    assert [p["id"] for p in api.get("/api/projects/").json()["results"]] == [world["project"].pk]


def test_annotator_outside_a_project_cannot_take_its_tasks(api, world):
    from tests.annotator.factories import AnnotatorFactory

    api.force_authenticate(AnnotatorFactory())
    assert api.post(f"/api/projects/{world['project'].pk}/tasks/next/").status_code == 404
    assert Assignment.objects.count() == 2


def test_user_without_the_annotator_role_is_refused(api, world):
    from tests.annotator.factories import UserFactory

    outsider = UserFactory()
    world["project"].annotators.add(outsider)
    api.force_authenticate(outsider)
    assert api.post(f"/api/projects/{world['project'].pk}/tasks/next/").status_code == 403


def test_pages_need_login_and_render_for_members(client, annotator, project):
    assert client.get("/").status_code == 302
    client.force_login(annotator)
    assert project.name in client.get("/").content.decode()


def test_schema_and_docs_are_served(client, admin_user):
    client.force_login(admin_user)
    assert client.get("/api/schema/").status_code == 200
    assert client.get("/api/docs/").status_code == 200
