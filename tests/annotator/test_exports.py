"""Dataset exports: each format's exact content, filters, streaming, the Label Studio round trip, the API."""

from __future__ import annotations

import io
import json
import uuid
import zipfile
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from django.conf import settings
from django.core.files.storage import default_storage
from django.db.models.query import QuerySet
from PIL import Image as PilImage

from annotator.models import Arm, Assignment, Correction, Job, Project
from annotator.services import exports
from annotator.services.exports import (
    ExportFilters,
    annotator_pseudonym,
    corrections_export,
    export_enqueue,
    label_studio_import,
)
from annotator.tasks import corrections_export_task
from reward.alignment import word_labels_from_correction
from reward.data import labelled_jsonl_read
from tests.annotator.factories import AnnotatorFactory, DetectionFactory, ProjectFactory, TaskFactory, corrections_bulk

pytestmark = pytest.mark.django_db

DAY_ONE = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
DAY_TWO = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)


def correction_plant(*, project: Project, annotator, original: str, corrected: str, arm: str, submitted_at: datetime):
    """A submitted correction as the app would store it, without going through a lease."""
    task = TaskFactory(project=project, caption__text=original, caption__model_version="captioner-2")
    labels = word_labels_from_correction(original, corrected)
    served_at = submitted_at - timedelta(seconds=20)
    assignment = Assignment.objects.create(
        task=task,
        annotator=annotator,
        arm=arm,
        status=Assignment.Status.SUBMITTED,
        leased_at=served_at,
        expires_at=submitted_at,
        served_at=served_at,
    )
    return Correction.objects.create(
        task=task,
        assignment=assignment,
        annotator=annotator,
        original_text=original,
        corrected_text=corrected,
        word_labels=labels.words,
        insertions=labels.insertions,
        arm=arm,
        served_at=served_at,
        submitted_at=submitted_at,
        active_seconds=12.5,
        client_submission_id=uuid.uuid4(),
    )


@pytest.fixture
def planted(project, annotator):
    """Three corrections: a colour fix (tokens arm, day one), an insertion and an unchanged caption (day two)."""
    other = AnnotatorFactory()
    colour = correction_plant(
        project=project,
        annotator=annotator,
        original="two red circles left of a blue square",
        corrected="two green circles left of a blue square",
        arm=Arm.TOKENS,
        submitted_at=DAY_ONE,
    )
    detection = DetectionFactory(caption=colour.task.caption)
    detection.created = DAY_ONE - timedelta(hours=1)
    detection.save(update_fields=["created"])
    insertion = correction_plant(
        project=project,
        annotator=other,
        original="a square",
        corrected="a big square",
        arm=Arm.BINARY,
        submitted_at=DAY_TWO,
    )
    unchanged = correction_plant(
        project=project,
        annotator=annotator,
        original="one yellow triangle",
        corrected="one yellow triangle",
        arm=Arm.NONE,
        submitted_at=DAY_TWO + timedelta(minutes=1),
    )
    return {"colour": colour, "insertion": insertion, "unchanged": unchanged, "other": other, "detection": detection}


def export_lines(project: Project, export_format: str, filters: ExportFilters | None = None) -> list[dict]:
    result = corrections_export(
        project=project, export_format=export_format, filters=filters or ExportFilters(), name=f"t.{export_format}"
    )
    with default_storage.open(result.file, "rb") as file:
        return [json.loads(line) for line in file.read().decode().splitlines() if line.strip()]


def test_jsonl_record_carries_labels_timings_versions_and_a_pseudonym(project, annotator, planted):
    records = export_lines(project, "jsonl")
    assert [record["correction_id"] for record in records] == [
        planted["colour"].pk,
        planted["insertion"].pk,
        planted["unchanged"].pk,
    ]
    colour = records[0]
    image = planted["colour"].task.caption.image
    assert colour["image"] == {"name": image.original_name, "path": image.file.name}
    assert colour["original"] == "two red circles left of a blue square"
    assert colour["corrected"] == "two green circles left of a blue square"
    assert [(word["text"], word["start"], word["end"]) for word in colour["words"] if word["label"] == "bad"] == [
        ("red", 4, 7)
    ]
    assert colour["arm"] == "tokens"
    assert colour["timings"]["active_seconds"] == 12.5
    assert colour["timings"]["wall_seconds"] == 20.0
    assert colour["caption_model_version"] == "captioner-2"
    assert colour["reward_model_version"] == planted["detection"].reward_model_version.name
    assert colour["annotator"] == annotator_pseudonym(annotator.pk)
    assert annotator.username not in json.dumps(records)
    assert records[1]["annotator"] != colour["annotator"]
    assert records[1]["insertions"] == [{"after_word_index": 0, "text": "big"}]
    assert records[1]["reward_model_version"] is None


def test_pseudonym_is_stable_and_keyed_by_the_secret(settings):
    first = annotator_pseudonym(7)
    assert annotator_pseudonym(7) == first != annotator_pseudonym(8)
    settings.SECRET_KEY = "another-secret-of-enough-length-for-the-hmac-xxxxxxxx"
    assert annotator_pseudonym(7) != first


def test_tldr_export_is_read_back_by_the_reward_trainer(project, planted):
    result = corrections_export(project=project, export_format="tldr", filters=ExportFilters(), name="tldr.jsonl")
    examples, problems = labelled_jsonl_read(Path(settings.MEDIA_ROOT) / result.file)
    assert problems == []
    assert [(example.caption, example.bad_spans) for example in examples] == [
        ("two red circles left of a blue square", ((4, 7),)),
        ("a square", ()),
        ("one yellow triangle", ()),
    ]
    assert examples[0].image.size == (16, 12)


def test_dpo_pairs_weigh_the_changed_words(project, planted):
    records = export_lines(project, "dpo")
    # The unchanged caption gives no pair.
    assert [record["correction_id"] for record in records] == [planted["colour"].pk, planted["insertion"].pk]
    colour, insertion = records
    assert (colour["chosen"], colour["rejected"]) == (
        "two green circles left of a blue square",
        "two red circles left of a blue square",
    )
    assert [(word["text"], word["weight"]) for word in colour["rejected_words"]] == [
        ("two", 1.0),
        ("red", 5.0),
        ("circles", 1.0),
        ("left", 1.0),
        ("of", 1.0),
        ("a", 1.0),
        ("blue", 1.0),
        ("square", 1.0),
    ]
    assert [word["weight"] for word in colour["chosen_words"]] == [1.0, 5.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0]
    assert colour["chosen_words"][1] == {"text": "green", "start": 4, "end": 9, "weight": 5.0}
    # An insertion marks no original word, only the new word of the chosen caption.
    assert [word["weight"] for word in insertion["rejected_words"]] == [1.0, 1.0]
    assert [(word["text"], word["weight"]) for word in insertion["chosen_words"]] == [
        ("a", 1.0),
        ("big", 5.0),
        ("square", 1.0),
    ]


def test_label_studio_tasks_hold_the_correction_and_the_bad_words(project, planted):
    result = corrections_export(project=project, export_format="label_studio", filters=ExportFilters(), name="ls.json")
    with default_storage.open(result.file, "rb") as file:
        tasks = json.load(file)
    assert len(tasks) == 3
    colour = tasks[0]
    assert colour["data"]["text"] == "two red circles left of a blue square"
    assert colour["data"]["image"] == default_storage.url(planted["colour"].task.caption.image.file.name)
    results = colour["annotations"][0]["result"]
    assert [r["value"] for r in results if r["type"] == "textarea"] == [
        {"text": ["two green circles left of a blue square"]}
    ]
    assert [r["value"] for r in results if r["type"] == "labels"] == [
        {"start": 4, "end": 7, "text": "red", "labels": ["bad"]}
    ]
    assert [r["type"] for r in tasks[2]["annotations"][0]["result"]] == ["textarea"]


def test_label_studio_round_trip_gives_the_same_captions_and_bad_words(project, planted, admin_user):
    result = corrections_export(project=project, export_format="label_studio", filters=ExportFilters(), name="ls.json")
    copy = ProjectFactory(name="copy")
    with default_storage.open(result.file, "rb") as file:
        report = label_studio_import(project=copy, file=file, created_by=admin_user)
    assert report.problems == []
    assert len(report.captions) == len(report.corrections) == 3

    def summary(of: Project) -> list[tuple]:
        return sorted(
            (
                correction.task.caption.image.original_name,
                correction.task.caption.text,
                correction.corrected_text,
                tuple((w["start"], w["end"]) for w in correction.word_labels if w["label"] == "bad"),
                correction.arm,
            )
            for correction in Correction.objects.filter(task__project=of)
        )

    assert summary(copy) == summary(project)
    assert copy.images.count() == 3
    assert set(copy.tasks.values_list("status", flat=True)) == {"done"}


def test_label_studio_own_export_with_a_media_url_cancelled_and_malformed_annotations(project, planted, admin_user):
    image = planted["colour"].task.caption.image
    own_export = [
        {
            "id": 41,
            "data": {"image": f"/{settings.MEDIA_URL.strip('/')}/{image.file.name}", "text": "a red square"},
            "annotations": [
                {"id": 1, "was_cancelled": True, "result": []},
                {
                    "id": 2,
                    "completed_by": 3,
                    "lead_time": 8.25,
                    "result": [
                        {"from_name": "corrected", "type": "textarea", "value": {"text": ["a blue square"]}},
                        {"from_name": "bad", "type": "labels", "value": {"start": 2, "end": 5, "labels": ["bad"]}},
                    ],
                },
            ],
        },
        {"id": 42, "data": {"image": "https://elsewhere.example/x.png", "text": "a circle"}, "annotations": []},
        {
            "id": 43,
            "data": {"image_path": image.file.name, "text": "a cone"},
            "annotations": [{"result": [{"type": "labels", "value": {"labels": ["bad"]}}]}],
        },
        {"id": 44, "data": {"image_path": image.file.name, "text": "a lone cube"}},
    ]
    copy = ProjectFactory(name="from label studio")
    report = label_studio_import(project=copy, file=_json_file(own_export), created_by=admin_user)
    assert len(report.corrections) == 1
    assert len(report.problems) == 2
    assert report.problems[0].startswith("task 2: image 'https://elsewhere.example/x.png' is not in this app's storage")
    assert report.problems[1] == "task 3: missing field 'start'"
    assert sorted(copy.tasks.values_list("caption__text", "status")) == [
        ("a lone cube", "pending"),
        ("a red square", "done"),
    ]
    correction = Correction.objects.get(pk=report.corrections[0])
    assert correction.corrected_text == "a blue square"
    assert [w["text"] for w in correction.word_labels if w["label"] == "bad"] == ["red"]
    assert correction.active_seconds == 8.25


def _json_file(value: object) -> io.BytesIO:
    return io.BytesIO(json.dumps(value).encode())


def test_filters_select_by_date_annotator_arm_and_change(project, annotator, planted):
    def ids(**filters) -> list[int]:
        return [record["correction_id"] for record in export_lines(project, "jsonl", ExportFilters(**filters))]

    assert ids(date_from=DAY_TWO.date()) == [planted["insertion"].pk, planted["unchanged"].pk]
    assert ids(date_to=DAY_ONE.date()) == [planted["colour"].pk]
    assert ids(annotator_id=planted["other"].pk) == [planted["insertion"].pk]
    assert ids(arm=Arm.NONE) == [planted["unchanged"].pk]
    assert ids(only_corrected=True) == [planted["colour"].pk, planted["insertion"].pk]
    other_project = ProjectFactory()
    assert export_lines(other_project, "jsonl") == []


@pytest.mark.parametrize(("export_format", "content"), [("jsonl", b""), ("label_studio", b"[]\n")])
def test_nothing_matching_gives_a_valid_empty_file_and_a_note(project, planted, export_format, content):
    result = corrections_export(
        project=project,
        export_format=export_format,
        filters=ExportFilters(date_from=DAY_TWO.date() + timedelta(days=30)),
        name="empty",
    )
    assert result.records == 0
    assert "no corrections matched" in result.note
    with default_storage.open(result.file, "rb") as file:
        assert file.read() == content


def test_export_streams_two_thousand_corrections_without_listing_them(project, annotator, monkeypatch):
    corrections_bulk(project, annotator, 2_000, at=DAY_ONE)
    original_fetch_all = QuerySet._fetch_all

    def fetch_all_but_corrections(queryset: QuerySet) -> None:
        if queryset.model is Correction:
            raise AssertionError("the export loaded every correction at once")
        original_fetch_all(queryset)

    monkeypatch.setattr(QuerySet, "_fetch_all", fetch_all_but_corrections)
    progress: list[float] = []
    result = corrections_export(
        project=project,
        export_format="tldr",
        filters=ExportFilters(),
        name="big.jsonl",
        on_progress=lambda fraction, step: progress.append(fraction),
    )
    assert result.records == 2_000
    assert progress == [0.25, 0.5, 0.75, 1.0]
    with default_storage.open(result.file, "rb") as file:
        assert sum(1 for _ in file) == 2_000


# ----------------------------------------------------------------------------- the job and the API


def test_export_job_goes_to_the_default_queue():
    from config.celery import app

    assert app.amqp.router.route({}, corrections_export_task.name)["queue"].name == "default"


def test_unknown_format_is_refused_naming_the_allowed_ones(api, admin_user, project):
    api.force_authenticate(admin_user)
    response = api.post(f"/api/projects/{project.pk}/exports/", {"format": "parquet"}, format="json")
    assert response.status_code == 400
    assert "jsonl, tldr, dpo, label_studio" in str(response.json()["format"])
    assert not Job.objects.exists()


def test_export_job_runs_and_its_file_downloads(api, admin_user, project, planted):
    api.force_authenticate(admin_user)
    response = api.post(
        f"/api/projects/{project.pk}/exports/",
        {"format": "jsonl", "filters": {"arm": "tokens", "only_corrected": True}},
        format="json",
    )
    assert response.status_code == 202
    job_id = response.json()["id"]
    assert response.json()["kind"] == "export"
    waiting = api.get(f"/api/exports/{job_id}/download/")
    assert waiting.status_code == 409
    assert "queued" in waiting.json()["detail"]

    corrections_export_task(job_id)

    job = api.get(f"/api/jobs/{job_id}/").json()
    assert (job["status"], job["progress"], job["metrics"]["records"]) == ("succeeded", 1.0, 1)
    download = api.get(f"/api/exports/{job_id}/download/")
    assert download.status_code == 200
    lines = b"".join(download.streaming_content).decode().splitlines()
    assert [json.loads(line)["correction_id"] for line in lines] == [planted["colour"].pk]


def test_export_of_an_empty_project_succeeds_with_a_note(admin_user):
    job = export_enqueue(project=ProjectFactory(), export_format="dpo", filters=ExportFilters(), created_by=admin_user)
    corrections_export_task(job.pk)
    job.refresh_from_db()
    assert job.status == Job.Status.SUCCEEDED
    assert job.metrics["records"] == 0
    assert job.metrics["note"] == "no corrections matched the filters; the file is empty"
    with default_storage.open(job.metrics["file"], "rb") as file:
        assert file.read() == b""


def test_failed_export_leaves_no_file_offered_as_complete(api, admin_user, project, planted, monkeypatch):
    written: list[int] = []

    def record_then_fail(correction: Correction) -> dict:
        if written:
            raise RuntimeError("disk on fire")
        written.append(correction.pk)
        return {"correction_id": correction.pk}

    monkeypatch.setitem(exports._RECORD_WRITERS, "jsonl", record_then_fail)
    job = export_enqueue(project=project, export_format="jsonl", filters=ExportFilters(), created_by=admin_user)
    with pytest.raises(RuntimeError):
        corrections_export_task(job.pk)
    job.refresh_from_db()
    assert job.status == Job.Status.FAILED
    assert "disk on fire" in job.message
    assert "file" not in job.metrics
    assert not default_storage.exists("exports") or default_storage.listdir("exports") == ([], [])
    api.force_authenticate(admin_user)
    response = api.get(f"/api/exports/{job.pk}/download/")
    assert response.status_code == 409
    assert "failed" in response.json()["detail"]


def test_download_of_a_job_that_is_not_an_export_is_not_found(api, admin_user):
    job = Job.objects.create(kind=Job.Kind.DETECT, status=Job.Status.SUCCEEDED)
    api.force_authenticate(admin_user)
    assert api.get(f"/api/exports/{job.pk}/download/").status_code == 404


@pytest.mark.parametrize("role", ["anonymous", "annotator", "admin"])
def test_only_admins_may_export_and_download(api, annotator, admin_user, project, planted, role):
    job = export_enqueue(project=project, export_format="tldr", filters=ExportFilters())
    corrections_export_task(job.pk)
    if role != "anonymous":
        api.force_authenticate(admin_user if role == "admin" else annotator)
    start = api.post(f"/api/projects/{project.pk}/exports/", {"format": "jsonl"}, format="json")
    download = api.get(f"/api/exports/{job.pk}/download/")
    status = api.get(f"/api/jobs/{job.pk}/")
    if role == "admin":
        assert (start.status_code, download.status_code, status.status_code) == (202, 200, 200)
    else:
        expected = {401, 403} if role == "anonymous" else {403}
        assert {start.status_code, download.status_code, status.status_code} <= expected


# ----------------------------------------------------------------------------- Hugging Face datasets


def test_parquet_reads_back_with_pyarrow_as_the_jsonl_records(project, planted):
    import pyarrow as pa
    import pyarrow.parquet as pq

    result = corrections_export(project=project, export_format="hf_parquet", filters=ExportFilters(), name="t.parquet")
    assert result.records == 3
    with default_storage.open(result.file, "rb") as file:
        table = pq.read_table(file)
    assert table.to_pylist() == export_lines(project, "jsonl")
    words = table.schema.field("words").type
    assert pa.types.is_list(words)
    assert pa.types.is_struct(words.value_type)
    assert [field.name for field in words.value_type] == ["text", "start", "end", "label"]


def test_parquet_is_written_a_row_group_per_chunk(project, annotator, planted, monkeypatch):
    import pyarrow.parquet as pq

    monkeypatch.setattr(exports, "CHUNK_SIZE", 2)
    result = corrections_export(project=project, export_format="hf_parquet", filters=ExportFilters(), name="t.parquet")
    with default_storage.open(result.file, "rb") as file:
        metadata = pq.ParquetFile(file).metadata
    assert [metadata.row_group(i).num_rows for i in range(metadata.num_row_groups)] == [2, 1]


def test_empty_parquet_export_keeps_its_columns(project):
    import pyarrow.parquet as pq

    result = corrections_export(project=project, export_format="hf_parquet", filters=ExportFilters(), name="t.parquet")
    with default_storage.open(result.file, "rb") as file:
        table = pq.read_table(file)
    assert table.num_rows == 0
    assert "words" in table.column_names
    assert "no corrections matched" in result.note


def _dataset_unzipped(result_file: str, tmp_path: Path):
    import datasets

    with default_storage.open(result_file, "rb") as file, zipfile.ZipFile(file) as archive:
        archive.extractall(tmp_path / "dataset")
    return datasets.load_from_disk(str(tmp_path / "dataset"))


def test_dataset_directory_loads_with_the_same_rows_as_the_jsonl(project, planted, tmp_path):
    result = corrections_export(project=project, export_format="hf_dataset", filters=ExportFilters(), name="t.zip")
    dataset = _dataset_unzipped(result.file, tmp_path)
    assert dataset.num_rows == result.records == 3
    assert dataset.to_list() == export_lines(project, "jsonl")
    assert "image_file" not in dataset.column_names


def test_include_images_embeds_decodable_images(project, planted, tmp_path):
    import datasets
    import pyarrow.parquet as pq

    result = corrections_export(
        project=project, export_format="hf_dataset", filters=ExportFilters(), name="t.zip", include_images=True
    )
    dataset = _dataset_unzipped(result.file, tmp_path)
    assert isinstance(dataset.features["image_file"], datasets.Image)
    expected = planted["colour"].task.caption.image
    first = dataset[0]["image_file"]
    with default_storage.open(expected.file.name, "rb") as stored:
        expected_pixels = PilImage.open(stored).convert("RGB").getpixel((0, 0))
    assert first.size == (16, 12)
    assert first.convert("RGB").getpixel((0, 0)) == expected_pixels
    # The Parquet file carries the bytes too, and the features that make `datasets` decode them.
    parquet = corrections_export(
        project=project, export_format="hf_parquet", filters=ExportFilters(), name="i.parquet", include_images=True
    )
    with default_storage.open(parquet.file, "rb") as file:
        table = pq.read_table(file)
    image_file = table.column("image_file").to_pylist()[1]
    assert image_file["path"] == planted["insertion"].task.caption.image.file.name
    assert PilImage.open(io.BytesIO(image_file["bytes"])).size == (16, 12)
    features = datasets.Features.from_arrow_schema(table.schema)
    assert isinstance(features["image_file"], datasets.Image)


def test_hf_export_job_names_its_file_by_format_and_passes_include_images(api, admin_user, project, planted):
    api.force_authenticate(admin_user)
    response = api.post(
        f"/api/projects/{project.pk}/exports/",
        {"format": "hf_parquet", "include_images": True, "filters": {"only_corrected": True}},
        format="json",
    )
    assert response.status_code == 202
    corrections_export_task(response.json()["id"])
    job = Job.objects.get(pk=response.json()["id"])
    assert job.payload["include_images"] is True
    assert job.metrics["file"].endswith(".parquet")
    assert job.metrics["records"] == 2
