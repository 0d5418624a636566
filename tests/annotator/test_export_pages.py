"""The export page and the Label Studio import page: who may open them, what a post starts, what they show."""

from __future__ import annotations

import io
import json
from datetime import date

import pytest
from django.core.files.storage import default_storage
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from annotator.models import Arm, Correction, Job, Project
from annotator.services.exports import ExportFilters, corrections_export, export_enqueue
from annotator.tasks import corrections_export_task
from tests.annotator.factories import TaskFactory
from tests.annotator.test_exports import DAY_ONE, correction_plant

pytestmark = pytest.mark.django_db


def _exports_url(project: Project) -> str:
    return reverse("project-exports", kwargs={"project_id": project.pk})


IMPORT_URL = "/projects/import/label-studio/"


def _messages(response) -> list[tuple[str, str]]:
    assert [status for _, status in response.redirect_chain] == [302]
    return [(message.level_tag, str(message)) for message in response.context["messages"]]


@pytest.mark.parametrize("role", ["anonymous", "annotator", "admin"])
@pytest.mark.parametrize("page", ["exports", "import"])
def test_only_admins_open_the_export_and_import_pages(client, annotator, admin_user, project, role, page):
    url = _exports_url(project) if page == "exports" else IMPORT_URL
    if role != "anonymous":
        client.force_login(annotator if role == "annotator" else admin_user)
    response = client.get(url)
    posted = client.post(url, {})
    if role == "anonymous":
        assert (response.status_code, response.url) == (302, f"/accounts/login/?next={url}")
        assert (posted.status_code, posted.url) == (302, f"/accounts/login/?next={url}")
    elif role == "annotator":
        assert (response.status_code, posted.status_code) == (403, 403)
    else:
        assert (response.status_code, posted.status_code) == (200, 400)
    assert not Job.objects.exists()
    assert Project.objects.count() == 1


def test_export_post_enqueues_the_job_with_its_filters_and_redirects(client, admin_user, annotator, project):
    client.force_login(admin_user)
    form = {
        "format": "hf_parquet",
        "date_from": "2026-03-01",
        "date_to": "2026-03-31",
        "annotator": annotator.pk,
        "arm": Arm.TOKENS,
        "only_corrected": "on",
        "include_images": "on",
    }
    response = client.post(_exports_url(project), form, follow=True)
    job = Job.objects.get()
    assert _messages(response) == [("success", f"Exporting as hf_parquet: job #{job.pk}, its progress is below.")]
    assert response.redirect_chain[0][0] == _exports_url(project)
    assert job.kind == Job.Kind.EXPORT
    assert job.created_by == admin_user
    assert job.payload == {
        "project_id": project.pk,
        "format": "hf_parquet",
        "include_images": True,
        "filters": ExportFilters(
            date_from=date(2026, 3, 1),
            date_to=date(2026, 3, 31),
            annotator_id=annotator.pk,
            arm=Arm.TOKENS,
            only_corrected=True,
        ).to_payload(),
    }
    page = response.content.decode()
    assert f'data-job-url="/api/jobs/{job.pk}/"' in page
    assert "data-job-active" in page


def test_export_form_refuses_a_reversed_date_range(client, admin_user, project):
    client.force_login(admin_user)
    response = client.post(
        _exports_url(project), {"format": "jsonl", "date_from": "2026-03-02", "date_to": "2026-03-01"}
    )
    assert response.status_code == 400
    assert "the last day comes before the first" in response.content.decode()
    assert not Job.objects.exists()


def test_finished_export_offers_its_download_and_lists_only_this_projects_exports(client, admin_user, project):
    finished = export_enqueue(project=project, export_format="jsonl", filters=ExportFilters())
    corrections_export_task(finished.pk)
    running = export_enqueue(project=project, export_format="tldr", filters=ExportFilters())
    other = export_enqueue(project=TaskFactory().project, export_format="dpo", filters=ExportFilters())
    client.force_login(admin_user)
    page = client.get(_exports_url(project)).content.decode()
    assert f'href="/api/exports/{finished.pk}/download/" data-export-download>' in page
    assert f'href="/api/exports/{running.pk}/download/" data-export-download hidden>' in page
    assert f"/api/jobs/{other.pk}/" not in page
    assert client.get(f"/api/exports/{finished.pk}/download/").status_code == 200


def test_job_text_and_project_name_are_escaped(client, admin_user):
    project = TaskFactory(project__name="<script>alert('name')</script>").project
    job = export_enqueue(project=project, export_format="jsonl", filters=ExportFilters())
    Job.objects.filter(pk=job.pk).update(
        status=Job.Status.FAILED, step="<img src=x onerror=alert(1)>", message="<script>alert('log')</script>"
    )
    client.force_login(admin_user)
    page = client.get(_exports_url(project)).content.decode()
    assert "<script>alert" not in page
    assert "<img src=x" not in page
    assert "&lt;script&gt;alert(&#x27;name&#x27;)&lt;/script&gt;" in page
    assert "&lt;img src=x onerror=alert(1)&gt;" in page


# ----------------------------------------------------------------------------- Label Studio import


def _label_studio_file(project: Project, admin_user) -> SimpleUploadedFile:
    """This app's Label Studio export of one corrected caption of `project`."""
    correction_plant(
        project=project,
        annotator=admin_user,
        original="two red circles",
        corrected="two blue circles",
        arm=Arm.TOKENS,
        submitted_at=DAY_ONE,
    )
    result = corrections_export(project=project, export_format="label_studio", filters=ExportFilters(), name="ls.json")
    with default_storage.open(result.file, "rb") as file:
        return SimpleUploadedFile("tasks.json", file.read(), "application/json")


def test_label_studio_upload_makes_a_project_and_reports_it(client, admin_user, project):
    upload = _label_studio_file(project, admin_user)
    tasks = json.loads(upload.read())
    tasks.append({"data": {"image": "https://elsewhere.example/x.png", "text": "a cone"}})
    upload = SimpleUploadedFile("tasks.json", json.dumps(tasks).encode(), "application/json")
    client.force_login(admin_user)
    response = client.post(IMPORT_URL, {"name": "from <b>label studio</b>", "file": upload}, follow=True)
    created = Project.objects.get(name="from <b>label studio</b>")
    assert response.redirect_chain[0][0] == reverse("project-admin", kwargs={"project_id": created.pk})
    assert _messages(response) == [
        ("success", "Imported 1 caption and 1 correction from tasks.json."),
        (
            "error",
            "task 2: image 'https://elsewhere.example/x.png' is not in this app's storage; "
            "upload it and set data.image_path",
        ),
    ]
    correction = Correction.objects.get(task__project=created)
    assert (correction.original_text, correction.corrected_text) == ("two red circles", "two blue circles")
    assert "from &lt;b&gt;label studio&lt;/b&gt;" in response.content.decode()


def test_a_file_that_is_not_label_studio_makes_no_project(client, admin_user):
    client.force_login(admin_user)
    upload = SimpleUploadedFile("tasks.json", b'{"not": "a list"}', "application/json")
    response = client.post(IMPORT_URL, {"name": "never made", "file": upload}, follow=True)
    assert _messages(response) == [
        (
            "error",
            "tasks.json: a Label Studio JSON export is a list of tasks; this file holds something else; "
            "no project was created.",
        )
    ]
    assert not Project.objects.filter(name="never made").exists()


def test_label_studio_import_refuses_a_name_in_use(client, admin_user, project):
    client.force_login(admin_user)
    upload = SimpleUploadedFile("tasks.json", io.BytesIO(b"[]").getvalue(), "application/json")
    response = client.post(IMPORT_URL, {"name": project.name, "file": upload})
    assert response.status_code == 400
    assert "exists already" in response.content.decode()
    assert Project.objects.count() == 1
