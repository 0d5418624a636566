"""Getting work in, and every bad input of the issue: each reported by name (and line), the rest imported."""

from __future__ import annotations

import io
import json
import zipfile

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from PIL import Image as PilImage

from annotator.models import Caption, Image, Job, Task
from annotator.services.imports import (
    captions_import_coco,
    captions_import_csv,
    captions_import_jsonl,
    images_import,
)
from tests.annotator.factories import ImageFactory, ModelVersionFactory, png_bytes

pytestmark = pytest.mark.django_db


def _upload(name: str, content: bytes) -> SimpleUploadedFile:
    return SimpleUploadedFile(name, content)


def _zip(members: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, content in members.items():
            archive.writestr(name, content)
    return buffer.getvalue()


def _file(name: str, text: str) -> io.BytesIO:
    stream = io.BytesIO(text.encode())
    stream.name = name
    return stream


def test_images_and_zipped_images_are_stored_once(project):
    report = images_import(
        project=project,
        files=[
            _upload("a.png", png_bytes()),
            _upload("batch.zip", _zip({"dir/b.png": png_bytes((8, 8)), "dir/a-again.png": png_bytes()})),
        ],
    )
    assert len(report.created) == 2 and report.duplicates == ["dir/a-again.png"] and report.problems == []
    image = Image.objects.get(original_name="dir/b.png")
    assert (image.width, image.height) == (8, 8)
    with image.file.open("rb") as stream:
        assert stream.read() == png_bytes((8, 8))


def test_not_an_image_is_reported(project):
    report = images_import(
        project=project, files=[_upload("notes.png", b"just some text"), _upload("ok.png", png_bytes())]
    )
    assert [(problem.source, "not an image" in problem.message) for problem in report.problems] == [("notes.png", True)]
    assert len(report.created) == 1


def test_corrupt_image_is_reported(project):
    truncated = png_bytes((64, 64))[:-40]
    report = images_import(project=project, files=[_upload("broken.png", truncated)])
    assert report.created == [] and "corrupt" in report.problems[0].message


def test_decompression_bomb_is_refused_before_decoding(project, settings):
    settings.TLDR_MAX_IMAGE_PIXELS = 10_000
    buffer = io.BytesIO()
    PilImage.new("1", (1000, 1000)).save(buffer, format="PNG")  # tiny file, a million pixels
    report = images_import(project=project, files=[_upload("bomb.png", buffer.getvalue())])
    assert report.created == [] and "over the limit of 10,000" in report.problems[0].message


def test_oversized_upload_is_refused(project, settings):
    settings.TLDR_MAX_UPLOAD_BYTES = 100
    report = images_import(project=project, files=[_upload("big.png", png_bytes((64, 64)))])
    assert report.created == [] and "over the limit" in report.problems[0].message


@pytest.mark.parametrize("unsafe", ["../evil.png", "dir/../../evil.png", "/etc/evil.png"])
def test_zip_with_paths_leaving_the_folder_is_refused_whole(project, unsafe):
    report = images_import(
        project=project, files=[_upload("trap.zip", _zip({"good.png": png_bytes(), unsafe: png_bytes((5, 5))}))]
    )
    assert report.created == [] and "unsafe path" in report.problems[0].message
    assert Image.objects.count() == 0


def test_jsonl_reports_bad_lines_by_number_and_imports_the_rest(project, django_capture_on_commit_callbacks):
    ImageFactory(project=project, original_name="scene0.png")
    ModelVersionFactory(status="active")
    lines = [
        json.dumps({"image": "scene0.png", "caption": "a red circle"}),
        "{not json",
        json.dumps({"image": "missing.png", "caption": "a blue square"}),
        "",
        json.dumps({"image": "scene0.png", "caption": "   "}),
        json.dumps({"picture": "scene0.png"}),
        json.dumps({"image": "scene0.png", "caption": "two green stars"}),
    ]
    with django_capture_on_commit_callbacks() as callbacks:
        report = captions_import_jsonl(project=project, file=_file("c.jsonl", "\n".join(lines)))
    assert [(problem.line, problem.message.split(" ")[0]) for problem in report.problems] == [
        (2, "not"),
        (3, "no"),
        (5, "the"),
        (6, "needs"),
    ]
    assert "missing.png" in report.problems[1].message
    assert sorted(Caption.objects.values_list("text", flat=True)) == ["a red circle", "two green stars"]
    assert Task.objects.filter(status=Task.Status.PENDING).count() == 2
    assert Job.objects.get().payload == {"caption_ids": report.created}
    assert len(callbacks) == 1  # detection is sent only once the captions are committed


def test_csv_reports_bad_rows_by_line(project):
    ImageFactory(project=project, original_name="folder/scene1.png")
    text = 'image,caption\nscene1.png,"a big, red circle"\nghost.png,a square\nscene1.png,\n'
    report = captions_import_csv(project=project, file=_file("c.csv", text))
    assert [problem.line for problem in report.problems] == [3, 4]
    assert Caption.objects.get().text == "a big, red circle"


def test_csv_without_the_columns_imports_nothing(project):
    report = captions_import_csv(project=project, file=_file("c.csv", "file,text\na.png,x\n"))
    assert report.created == [] and "header" in report.problems[0].message


def test_coco_captions(project):
    ImageFactory(project=project, original_name="000001.jpg")
    coco = {
        "images": [{"id": 1, "file_name": "000001.jpg"}, {"id": 2, "file_name": "000002.jpg"}],
        "annotations": [
            {"image_id": 1, "caption": "a cat"},
            {"image_id": 2, "caption": "a dog"},
            {"image_id": 9, "caption": "nobody"},
        ],
    }
    report = captions_import_coco(project=project, file=_file("captions.json", json.dumps(coco)))
    assert [problem.line for problem in report.problems] == [2, 3]
    assert Caption.objects.get().text == "a cat"


def test_a_failure_mid_import_leaves_nothing_half_imported(project, monkeypatch):
    ImageFactory(project=project, original_name="scene0.png")

    def explode(*args, **kwargs):
        raise RuntimeError("database went away")

    monkeypatch.setattr("annotator.services.captions.Task.objects.bulk_create", explode)
    with pytest.raises(RuntimeError):
        captions_import_jsonl(
            project=project, file=_file("c.jsonl", json.dumps({"image": "scene0.png", "caption": "x"}))
        )
    assert Caption.objects.count() == 0


def test_upload_api_reports_problems(api, admin_user, project):
    api.force_authenticate(admin_user)
    response = api.post(
        f"/api/projects/{project.pk}/images/",
        {"files": [_upload("a.png", png_bytes()), _upload("b.png", b"nope")]},
        format="multipart",
    )
    assert response.status_code == 201
    assert response.json()["problems"][0]["source"] == "b.png"


def test_caption_import_api_says_which_lines_failed(api, admin_user, project):
    ImageFactory(project=project, original_name="scene0.png")
    api.force_authenticate(admin_user)
    upload = _upload("c.jsonl", b'{"image": "scene0.png", "caption": "ok"}\n{"image": "nope.png", "caption": "x"}\n')
    response = api.post(f"/api/projects/{project.pk}/captions/import/", {"file": upload}, format="multipart")
    assert response.status_code == 201
    [problem] = response.json()["problems"]
    assert (problem["source"], problem["line"]) == ("c.jsonl", 2) and "nope.png" in problem["message"]
