"""The admin's project pages: who may open and post them, and what each post imports and says."""

from __future__ import annotations

import io
import json
import zipfile
from datetime import timedelta

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from annotator.models import Assignment, Caption, Image, Job, ModelVersion, Project
from annotator.selectors.projects import ProjectCounts
from tests.annotator.factories import (
    AnnotatorFactory,
    CaptionFactory,
    ImageFactory,
    ModelVersionFactory,
    ProjectFactory,
    TaskFactory,
    png_bytes,
)

pytestmark = pytest.mark.django_db


def _zip(members: dict[str, bytes]) -> SimpleUploadedFile:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, content in members.items():
            archive.writestr(name, content)
    return SimpleUploadedFile("batch.zip", buffer.getvalue(), "application/zip")


def _png(name: str, size: tuple[int, int] = (16, 12)) -> SimpleUploadedFile:
    return SimpleUploadedFile(name, png_bytes(size), "image/png")


def _messages(response) -> list[tuple[str, str]]:
    """The messages the page shows after a post and its one redirect (the client followed it)."""
    assert [status for _, status in response.redirect_chain] == [302]
    return [(message.level_tag, str(message)) for message in response.context["messages"]]


def _admin_page(project: Project) -> str:
    return reverse("project-admin", kwargs={"project_id": project.pk})


def _requests(project: Project, annotator) -> list[tuple[str, str, str, dict | None]]:
    """(name, method, url, form data) of every admin page and post; each post is valid for an admin."""
    project_url = f"/projects/{project.pk}"
    new_project = {
        "name": "made on the page",
        "arm_weight_tokens": 1,
        "arm_weight_binary": 1,
        "arm_weight_none": 1,
        "overlap": 1,
        "lease_seconds": 300,
        "threshold": 0.5,
        "annotators": [annotator.pk],
    }
    caption_file = SimpleUploadedFile("c.jsonl", json.dumps({"image": "a.png", "caption": "a red circle"}).encode())
    return [
        ("new project page", "get", "/projects/new/", None),
        ("create project", "post", "/projects/new/", new_project),
        ("project page", "get", f"{project_url}/", None),
        ("upload images", "post", f"{project_url}/images/", {"files": [_png("a.png")]}),
        ("import captions", "post", f"{project_url}/captions/import/", {"file": caption_file}),
        ("caption images", "post", f"{project_url}/captions/generate/", {}),
    ]


@pytest.mark.parametrize("role", ["anonymous", "annotator", "admin"])
def test_permission_matrix_of_the_admin_pages(client, role, annotator, admin_user, project):
    ModelVersionFactory(kind=ModelVersion.Kind.POLICY, status=ModelVersion.Status.ACTIVE)
    if role != "anonymous":
        client.force_login(annotator if role == "annotator" else admin_user)
    for name, method, url, data in _requests(project, annotator):
        response = client.get(url) if method == "get" else client.post(url, data)
        if role == "anonymous":
            assert (response.status_code, response.url) == (302, f"/accounts/login/?next={url}"), name
        elif role == "annotator":
            assert response.status_code == 403, name
        elif method == "get":
            assert response.status_code == 200, name
        else:
            assert response.status_code == 302 and response.url.startswith("/projects/"), name
    refused = role != "admin"
    assert Project.objects.count() == (1 if refused else 2)
    assert Image.objects.count() == (0 if refused else 1)
    assert Caption.objects.count() == (0 if refused else 1)
    assert Job.objects.filter(kind=Job.Kind.CAPTION).count() == 0  # the one image got its caption from the file


def test_admin_pages_refuse_the_wrong_method(client, admin_user, project):
    client.force_login(admin_user)
    assert client.get(f"/projects/{project.pk}/images/").status_code == 405
    assert client.post(_admin_page(project)).status_code == 405


def test_project_list_links_the_admin_pages_for_admins_only(client, annotator, admin_user, project):
    manage, new = _admin_page(project), reverse("project-new")
    client.force_login(annotator)
    page = client.get("/").content.decode()
    assert project.name in page and f'href="{manage}"' not in page and f'href="{new}"' not in page
    client.force_login(admin_user)
    page = client.get("/").content.decode()
    assert f'href="{manage}"' in page and f'href="{new}"' in page


def test_creating_a_project_stores_every_setting_and_its_annotators(client, admin_user, annotator):
    client.force_login(admin_user)
    response = client.post(
        "/projects/new/",
        {
            "name": "street scenes",
            "description": "dashcam frames",
            "arm_weight_tokens": 2,
            "arm_weight_binary": 1,
            "arm_weight_none": 0,
            "overlap": 3,
            "lease_seconds": 600,
            "threshold": 0.3,
            "annotators": [annotator.pk],
        },
        follow=True,
    )
    project = Project.objects.get(name="street scenes")
    assert response.redirect_chain == [(_admin_page(project), 302)]
    assert project.description == "dashcam frames"
    assert project.arm_weights == {"tokens": 2, "binary": 1, "none": 0}
    assert (project.overlap, project.lease_seconds, project.threshold) == (3, 600, 0.3)
    assert list(project.annotators.all()) == [annotator]
    assert _messages(response) == [
        ("success", "Created project “street scenes”: upload its images and captions below.")
    ]


def test_a_project_without_any_arm_or_with_a_too_short_lease_is_refused_with_reasons(client, admin_user):
    client.force_login(admin_user)
    response = client.post(
        "/projects/new/",
        {
            "name": "no arms",
            "arm_weight_tokens": 0,
            "arm_weight_binary": 0,
            "arm_weight_none": 0,
            "overlap": 0,
            "lease_seconds": 10,
            "threshold": 1.5,
        },
    )
    assert response.status_code == 400 and not Project.objects.exists()
    errors = response.context["form"].errors
    assert errors["arm_weight_tokens"] == ["give at least one arm a weight above 0: every task needs an arm"]
    assert set(errors) == {"arm_weight_tokens", "overlap", "lease_seconds", "threshold"}
    assert "every task needs an arm" in response.content.decode()


def test_project_page_counts_the_work_and_names_the_active_models(client, admin_user, annotator, project, now):
    reward = ModelVersionFactory(name="tldr-7", status=ModelVersion.Status.ACTIVE)
    ImageFactory(project=project)  # no caption yet
    tasks = [TaskFactory(project=project, status=status) for status in ["pending", "ready", "ready", "ready", "done"]]
    leased, skipped = tasks[2], tasks[3]
    Assignment.objects.create(
        task=leased,
        annotator=annotator,
        arm="tokens",
        leased_at=now,
        expires_at=now + timedelta(minutes=5),
        served_at=now,
    )
    Assignment.objects.create(
        task=skipped, annotator=annotator, arm="none", status="skipped", leased_at=now, expires_at=now, served_at=now
    )
    lapsed = now - timedelta(minutes=1)  # an expired lease holds nothing
    Assignment.objects.create(
        task=tasks[1], annotator=annotator, arm="none", leased_at=now, expires_at=lapsed, served_at=now
    )
    TaskFactory()  # another project's task counts nowhere here
    client.force_login(admin_user)
    response = client.get(_admin_page(project))
    assert response.context["counts"] == ProjectCounts(
        images=6,
        images_uncaptioned=1,
        captions=5,
        tasks_pending=1,
        tasks_ready=3,
        tasks_leased=1,
        tasks_done=1,
        tasks_skipped=1,
        corrections=0,
    )
    assert response.context["model_versions"] == [("reward model (TLDR)", reward), ("captioner (policy)", None)]
    page = response.content.decode()
    assert "tldr-7" in page and "none active" in page


def test_uploading_several_files_and_a_zip_through_the_page_stores_every_image(client, admin_user, project):
    client.force_login(admin_user)
    batch = _zip({"street/c.png": png_bytes((8, 8)), "d.png": png_bytes((9, 9)), "readme.txt": b"not an image"})
    response = client.post(
        f"/projects/{project.pk}/images/", {"files": [_png("a.png", (4, 4)), _png("b.png", (5, 5)), batch]}, follow=True
    )
    assert response.redirect_chain == [(_admin_page(project), 302)]
    assert _messages(response) == [("success", "Imported 4 images: a.png, b.png, street/c.png, d.png.")]
    stored = {image.original_name: image for image in Image.objects.filter(project=project)}
    assert {name: (image.width, image.height) for name, image in stored.items()} == {
        "a.png": (4, 4),
        "b.png": (5, 5),
        "street/c.png": (8, 8),
        "d.png": (9, 9),
    }
    with stored["street/c.png"].file.open("rb") as stream:
        assert stream.read() == png_bytes((8, 8))


def test_a_duplicate_upload_is_reported_and_not_stored_twice(client, admin_user, project):
    client.force_login(admin_user)
    client.post(f"/projects/{project.pk}/images/", {"files": [_png("a.png")]}, follow=True)
    response = client.post(f"/projects/{project.pk}/images/", {"files": [_png("again.png")]}, follow=True)
    assert _messages(response) == [("info", "Already in the project, not stored again: again.png.")]
    assert Image.objects.count() == 1


def test_an_unsafe_zip_and_a_corrupt_image_are_reported_by_name_and_the_good_image_is_stored(
    client, admin_user, project
):
    client.force_login(admin_user)
    trap = _zip({"fine.png": png_bytes(), "../escape.png": png_bytes((5, 5))})
    corrupt = SimpleUploadedFile("broken.png", png_bytes((64, 64))[:-40], "image/png")
    response = client.post(f"/projects/{project.pk}/images/", {"files": [trap, corrupt, _png("good.png")]}, follow=True)
    [imported, unsafe, broken] = _messages(response)
    assert imported == ("success", "Imported 1 image: good.png.")
    assert unsafe[0] == "error" and unsafe[1].startswith(
        "batch.zip holds an unsafe path '../escape.png' (absolute or with '..'); nothing from it was imported"
    )
    assert broken[0] == "error" and broken[1].startswith("broken.png is a corrupt or truncated image")
    assert list(Image.objects.values_list("original_name", flat=True)) == ["good.png"]


def test_posting_no_file_says_what_to_choose(client, admin_user, project):
    client.force_login(admin_user)
    response = client.post(f"/projects/{project.pk}/images/", {}, follow=True)
    assert _messages(response) == [("error", "choose one or more images or .zip files to upload")]
    response = client.post(f"/projects/{project.pk}/captions/import/", {}, follow=True)
    assert _messages(response) == [("error", "choose a caption file to import")]


def test_a_jsonl_with_bad_lines_imports_only_the_valid_ones_and_names_each_bad_line(
    client, admin_user, project, django_capture_on_commit_callbacks
):
    ImageFactory(project=project, original_name="scene0.png")
    ModelVersionFactory(status=ModelVersion.Status.ACTIVE)
    lines = [
        json.dumps({"image": "scene0.png", "caption": "a red circle"}),
        "{not json",
        json.dumps({"image": "missing.png", "caption": "a blue square"}),
        json.dumps({"image": "scene0.png", "caption": "two green stars"}),
    ]
    client.force_login(admin_user)
    with django_capture_on_commit_callbacks() as callbacks:
        response = client.post(
            f"/projects/{project.pk}/captions/import/",
            {"file": SimpleUploadedFile("c.jsonl", "\n".join(lines).encode())},
            follow=True,
        )
    job = Job.objects.get(kind=Job.Kind.DETECT)
    assert _messages(response) == [
        ("success", f"Imported 2 captions from c.jsonl; TLDR scores them in job #{job.pk}."),
        ("error", "c.jsonl, line 2: not valid JSON (Expecting property name enclosed in double quotes)"),
        ("error", f"c.jsonl, line 3: no image named 'missing.png' in project '{project.name}': upload it first"),
    ]
    assert sorted(Caption.objects.values_list("text", flat=True)) == ["a red circle", "two green stars"]
    assert len(callbacks) == 1


def test_coco_problems_count_annotations_and_an_unknown_format_is_refused(client, admin_user, project):
    ImageFactory(project=project, original_name="000001.jpg")
    coco = {
        "images": [{"id": 1, "file_name": "000001.jpg"}],
        "annotations": [{"image_id": 1, "caption": "a cat"}, {"image_id": 9, "caption": "nobody"}],
    }
    client.force_login(admin_user)
    response = client.post(
        f"/projects/{project.pk}/captions/import/",
        {"file": SimpleUploadedFile("captions.json", json.dumps(coco).encode())},
        follow=True,
    )
    assert _messages(response) == [
        (
            "success",
            "Imported 1 caption from captions.json; no reward model is active, so their tasks wait for one "
            "(activate it in the admin).",
        ),
        ("error", "captions.json, annotation 2: `image_id` names no entry of `images`"),
    ]
    response = client.post(
        f"/projects/{project.pk}/captions/import/", {"file": SimpleUploadedFile("notes.txt", b"a cat\n")}, follow=True
    )
    assert _messages(response) == [
        ("error", "notes.txt: say which format it is (jsonl, csv or coco), or name the file .jsonl, .csv or .json")
    ]
    response = client.post(
        f"/projects/{project.pk}/captions/import/",
        {"file": SimpleUploadedFile("notes.txt", b"image,caption\n000001.jpg,a black cat\n"), "file_format": "csv"},
        follow=True,
    )
    assert _messages(response)[0] == (
        "success",
        "Imported 1 caption from notes.txt; no reward model is active, "
        "so their tasks wait for one (activate it in the admin).",
    )
    assert Caption.objects.count() == 2


def test_a_file_with_many_bad_lines_lists_the_first_fifty(client, admin_user, project):
    client.force_login(admin_user)
    lines = "\n".join(json.dumps({"image": f"ghost{n}.png", "caption": "x"}) for n in range(60))
    response = client.post(
        f"/projects/{project.pk}/captions/import/", {"file": SimpleUploadedFile("c.jsonl", lines.encode())}, follow=True
    )
    messages = _messages(response)
    assert len(messages) == 51 and messages[49][1].startswith("c.jsonl, line 50: no image named 'ghost49.png'")
    assert messages[50] == ("error", "…and 10 more problems, not listed here; the import API reports every one.")


def test_captioning_post_queues_one_job_for_the_images_without_captions_on_commit(
    client, admin_user, project, monkeypatch, django_capture_on_commit_callbacks
):
    ModelVersionFactory(kind=ModelVersion.Kind.POLICY, status=ModelVersion.Status.ACTIVE)
    captioned = CaptionFactory(image__project=project).image
    bare = ImageFactory.create_batch(2, project=project)
    ImageFactory()  # another project's image is not captioned here
    sent: list[int] = []
    monkeypatch.setattr("annotator.tasks.captions_generate_task.delay", sent.append)
    client.force_login(admin_user)
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        response = client.post(f"/projects/{project.pk}/captions/generate/", follow=True)
    job = Job.objects.get()
    assert (job.kind, job.status, job.created_by) == (Job.Kind.CAPTION, Job.Status.QUEUED, admin_user)
    assert job.payload == {"project_id": project.pk, "image_ids": [image.pk for image in bare]}
    assert captioned.pk not in job.payload["image_ids"]
    assert len(callbacks) == 1 and sent == [job.pk]
    assert _messages(response) == [
        ("success", f"Captioning 2 images without a caption: job #{job.pk}, its progress is below.")
    ]
    # A second click while the job waits queues nothing: those images are being captioned.
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(f"/projects/{project.pk}/captions/generate/", follow=True)
    assert Job.objects.count() == 1 and sent == [job.pk]
    assert _messages(response) == [
        ("info", "Every image of the project has a caption or is being captioned: nothing to do.")
    ]


def test_captioning_without_an_active_captioner_says_how_to_get_one(client, admin_user, project):
    ImageFactory(project=project)
    client.force_login(admin_user)
    response = client.post(f"/projects/{project.pk}/captions/generate/", follow=True)
    [(level, text)] = _messages(response)
    assert level == "error" and text.startswith("no active policy model: run `python -m reward bootstrap`")
    assert not Job.objects.exists()


def test_jobs_section_lists_this_projects_jobs_and_rescoring_only(client, admin_user, project):
    other = ProjectFactory()
    own_caption = CaptionFactory(image__project=project)
    other_caption = CaptionFactory(image__project=other)
    own_captioning = Job.objects.create(kind=Job.Kind.CAPTION, payload={"project_id": project.pk, "image_ids": []})
    Job.objects.create(kind=Job.Kind.CAPTION, payload={"project_id": other.pk, "image_ids": []})
    own_detection = Job.objects.create(
        kind=Job.Kind.DETECT, status=Job.Status.RUNNING, progress=0.25, payload={"caption_ids": [own_caption.pk]}
    )
    Job.objects.create(kind=Job.Kind.DETECT, payload={"caption_ids": [other_caption.pk]})
    rescoring = Job.objects.create(
        kind=Job.Kind.RESCORE, status=Job.Status.FAILED, message="model folder <tldr> is missing"
    )
    client.force_login(admin_user)
    response = client.get(_admin_page(project))
    assert list(response.context["jobs"]) == [rescoring, own_detection, own_captioning]
    page = response.content.decode()
    assert f'data-job-url="/api/jobs/{own_detection.pk}/" data-job-active' in page
    assert f'data-job-url="/api/jobs/{rescoring.pk}/">' in page  # an ended job is not polled
    assert 'max="1" value="0.25"' in page
    assert "model folder &lt;tldr&gt; is missing" in page


def test_captions_and_file_names_with_html_are_shown_as_text(client, admin_user, project):
    image = ImageFactory(project=project, original_name="<img src=x onerror=alert(1)>.png")
    CaptionFactory(image=image, text="<script>alert('caption')</script> a <b>red</b> circle")
    client.force_login(admin_user)
    page = client.get(_admin_page(project)).content.decode()
    assert "&lt;script&gt;alert(&#x27;caption&#x27;)&lt;/script&gt; a &lt;b&gt;red&lt;/b&gt; circle" in page
    assert "&lt;img src=x onerror=alert(1)&gt;.png" in page
    assert "<script>alert" not in page and "<img src=x" not in page and "<b>red</b>" not in page
    upload = SimpleUploadedFile("c.jsonl", json.dumps({"image": "<i>ghost</i>.png", "caption": "x"}).encode())
    page = client.post(f"/projects/{project.pk}/captions/import/", {"file": upload}, follow=True).content.decode()
    assert "no image named &#x27;&lt;i&gt;ghost&lt;/i&gt;.png&#x27;" in page and "<i>ghost</i>" not in page


def test_the_annotation_page_stays_open_to_members_and_closed_to_others(client, annotator, project):
    client.force_login(annotator)
    assert client.get(reverse("project-annotate", kwargs={"project_id": project.pk})).status_code == 200
    client.force_login(AnnotatorFactory())
    assert client.get(reverse("project-annotate", kwargs={"project_id": project.pk})).status_code == 404
