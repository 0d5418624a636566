"""Dataset exports of corrections, for admins: the app's own JSONL, TLDR training data, DPO pairs, Label Studio.

An export streams: corrections come from the database in chunks (`.iterator`) and go out one line
at a time to a local temporary file, so a project of millions of corrections needs no more memory
than one chunk. Only a complete file is saved through the storage API under `exports/`, and only
then is its name recorded on the job: a crash half-way leaves no file that the download could offer.

Formats (one record per correction, oldest first):

- `jsonl`: everything a correction knows, with the annotator as a pseudonym (see `annotator_pseudonym`):
  {"correction_id", "caption_id", "image": {"name", "path"}, "original", "corrected",
   "words": [{"text", "start", "end", "label": "good"|"bad"}] (spans of the original),
   "insertions": [{"after_word_index", "text"}], "arm", "annotator",
   "timings": {"served_at", "submitted_at", "wall_seconds", "active_seconds"},
   "caption_source", "caption_model_version", "reward_model_version"}
  `reward_model_version` names the model whose detection was current when the correction came in.
- `tldr`: the word-labelled JSONL that `python -m reward train --data` reads
  (`reward.data.labelled_jsonl_read`): {"image", "caption", "words": [{"text", "start", "end", "label"}],
  "category": "correction"}; "image" is relative to the export file, as that reader wants.
- `dpo`: see `_dpo_record`.
- `label_studio`: a JSON list of Label Studio tasks for `LABEL_STUDIO_CONFIG`, see `_label_studio_record`;
  `label_studio_import` reads it back, and Label Studio's own JSON export of the same config.
- `hf_parquet`: the `jsonl` records as one Parquet file with Hugging Face `datasets` features in its
  schema (`datasets.load_dataset("parquet", …)` gets them typed; plain pyarrow reads it too). Nested
  fields stay nested: `words` is a list of structs, `image` the struct {"name", "path"}. Written one
  row group per chunk, so memory stays that of one chunk.
- `hf_dataset`: the same rows as a `datasets.Dataset.save_to_disk` directory, zipped into one file;
  unzip it and `datasets.load_from_disk` it. Built from the Parquet file, which `datasets` converts on
  disk, so memory stays bounded here too.

With `include_images`, the two `hf_` formats add the column `image_file`, a `datasets.Image` holding
the image's bytes (and its storage name as path), so the dataset travels without the media folder.
"""

from __future__ import annotations

import hashlib
import json
import posixpath
import tempfile
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from datetime import date, datetime
from functools import partial
from pathlib import Path, PurePosixPath
from typing import IO, TYPE_CHECKING

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.core.files import File
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.db import transaction
from django.db.models import F, OuterRef, QuerySet, Subquery
from django.utils import timezone
from django.utils.crypto import salted_hmac

from annotator.models import Arm, Assignment, Caption, Correction, Detection, Image, Job, ModelVersion, Project, Task
from annotator.services.captions import captions_create
from annotator.services.detection import detection_enqueue
from annotator.services.imports import image_validate
from annotator.services.jobs import Progress, job_create, job_enqueue_on_commit
from annotator.services.projects import project_create
from reward.alignment import word_labels_from_correction
from reward.words import response_words

if TYPE_CHECKING:
    from datasets import Features

EXPORT_FORMATS = {
    "jsonl": "corrections as JSON Lines, annotators pseudonymous",
    "tldr": "word-labelled JSONL for `python -m reward train --data`",
    "dpo": "preference pairs (chosen = corrected, rejected = original) with per-word weights",
    "label_studio": "Label Studio JSON tasks with the correction as a pre-filled annotation",
    "hf_parquet": "Hugging Face datasets Parquet file of the JSONL records",
    "hf_dataset": "Hugging Face datasets directory (save_to_disk), zipped; open with load_from_disk",
}
EXPORT_EXTENSIONS = {"label_studio": "json", "hf_parquet": "parquet", "hf_dataset": "zip"}
HF_FORMATS = frozenset({"hf_parquet", "hf_dataset"})
EXPORTS_DIR = "exports"
CHUNK_SIZE = 500
# RLHF-V's dense DPO (DDPO) weighs the corrected segments above the unchanged ones; it uses 5.
CHANGED_WORD_WEIGHT = 5.0
UNCHANGED_WORD_WEIGHT = 1.0
BAD_LABEL = "bad"

LABEL_STUDIO_CONFIG = """<View>
  <Image name="image" value="$image"/>
  <Labels name="bad" toName="caption">
    <Label value="bad" background="red"/>
  </Labels>
  <Text name="caption" value="$text"/>
  <TextArea name="corrected" toName="caption" editable="true" maxSubmissions="1"
            placeholder="the caption as it should read"/>
</View>"""


@dataclass(frozen=True)
class ExportFilters:
    """Which corrections go out: all of a project's by default. Dates are inclusive, on the submit day."""

    date_from: date | None = None
    date_to: date | None = None
    annotator_id: int | None = None
    arm: str | None = None
    only_corrected: bool = False

    def to_payload(self) -> dict:
        values = asdict(self)
        return {key: value.isoformat() if isinstance(value, date) else value for key, value in values.items()}

    @classmethod
    def from_payload(cls, payload: dict) -> ExportFilters:
        return cls(
            date_from=date.fromisoformat(payload["date_from"]) if payload.get("date_from") else None,
            date_to=date.fromisoformat(payload["date_to"]) if payload.get("date_to") else None,
            annotator_id=payload.get("annotator_id"),
            arm=payload.get("arm"),
            only_corrected=bool(payload.get("only_corrected", False)),
        )


@dataclass(frozen=True)
class ExportResult:
    """What an export wrote: the storage name of the file, how many records, and a note for a person."""

    file: str
    records: int
    note: str = ""


class ExportFormatUnknown(ValueError):
    """An export format this module does not write; the message lists the ones it does."""


def _export_format_check(export_format: str) -> None:
    if export_format not in EXPORT_FORMATS:
        raise ExportFormatUnknown(f"unknown export format {export_format!r}; use one of {', '.join(EXPORT_FORMATS)}")


def annotator_pseudonym(user_id: int) -> str:
    """A stable id for an annotator that does not name them: an HMAC of the user id keyed by SECRET_KEY.

    The same person gets the same pseudonym in every export (so agreement and speed can be studied per
    annotator); without the secret it cannot be turned back into a user.
    """
    return salted_hmac("annotator.exports.annotator_pseudonym", str(user_id)).hexdigest()[:16]


def corrections_for_export(*, project: Project, filters: ExportFilters) -> QuerySet[Correction]:
    """The corrections an export writes, oldest first, with the rows every record needs joined in."""
    detection_then = Detection.objects.filter(
        caption_id=OuterRef("task__caption_id"), created__lte=OuterRef("submitted_at")
    ).order_by("-created", "-id")
    corrections = (
        Correction.objects.filter(project=project)
        .select_related("task__caption__image")
        .defer("events")  # the client's event log can be long and no format carries it
        .annotate(reward_model_version=Subquery(detection_then.values("reward_model_version__name")[:1]))
        .order_by("submitted_at", "id")
    )
    if filters.date_from:
        corrections = corrections.filter(submitted_at__date__gte=filters.date_from)
    if filters.date_to:
        corrections = corrections.filter(submitted_at__date__lte=filters.date_to)
    if filters.annotator_id is not None:
        corrections = corrections.filter(annotator_id=filters.annotator_id)
    if filters.arm:
        corrections = corrections.filter(arm=filters.arm)
    if filters.only_corrected:
        corrections = corrections.exclude(corrected_text=F("original_text"))
    return corrections


def corrections_export(
    *,
    project: Project,
    export_format: str,
    filters: ExportFilters,
    name: str,
    include_images: bool = False,
    on_progress: Progress | None = None,
) -> ExportResult:
    """Write the project's corrections matching `filters` in `export_format`; save the file as `exports/<name>`.

    `include_images` embeds each image's bytes in the `hf_` formats; the JSON formats always refer to
    images by storage name. Nothing matching is not an error: the file is a valid empty one (no lines,
    `[]`, a Parquet file or dataset of no rows), and the note says so.
    """
    _export_format_check(export_format)
    corrections = corrections_for_export(project=project, filters=filters)
    total = corrections.count()
    write_record: Callable[[Correction], dict | None] = (
        partial(_hf_record, include_images=include_images)
        if export_format in HF_FORMATS
        else _RECORD_WRITERS[export_format]
    )
    records = _records_stream(corrections=corrections, total=total, write_record=write_record, on_progress=on_progress)
    with tempfile.TemporaryFile(mode="w+b") as scratch:
        if export_format == "hf_parquet":
            written = _parquet_write(records, scratch, features=_hf_features(include_images=include_images))
        elif export_format == "hf_dataset":
            written = _hf_dataset_write(records, scratch, features=_hf_features(include_images=include_images))
        else:
            written = _json_write(records, scratch, as_list=export_format == "label_studio")
        scratch.seek(0)
        stored = default_storage.save(posixpath.join(EXPORTS_DIR, name), File(scratch, name=name))
    notes = [] if total else ["no corrections matched the filters; the file is empty"]
    if total > written:
        notes.append(
            f"{total - written} corrections that changed no word left out: a pair needs two different captions"
        )
    return ExportResult(file=stored, records=written, note="; ".join(notes))


def _records_stream(
    *,
    corrections: QuerySet[Correction],
    total: int,
    write_record: Callable[[Correction], dict | None],
    on_progress: Progress | None,
) -> Iterator[dict]:
    """The records of `corrections`, a chunk at a time from the database; progress per chunk."""
    for number, correction in enumerate(corrections.iterator(chunk_size=CHUNK_SIZE), start=1):
        record = write_record(correction)
        if record is not None:
            yield record
        if on_progress is not None and (number % CHUNK_SIZE == 0 or number == total):
            on_progress(number / total, f"wrote {number} of {total} corrections")


def _json_write(records: Iterator[dict], scratch: IO[bytes], *, as_list: bool) -> int:
    """JSON Lines, or (`as_list`) one JSON list written piece by piece; returns how many records."""
    written = 0
    for record in records:
        if as_list:
            scratch.write(b",\n" if written else b"[\n")
        scratch.write(json.dumps(record, ensure_ascii=False).encode())
        if not as_list:
            scratch.write(b"\n")
        written += 1
    if as_list:
        scratch.write(b"\n]\n" if written else b"[]\n")
    return written


def export_enqueue(
    *,
    project: Project,
    export_format: str,
    filters: ExportFilters,
    include_images: bool = False,
    created_by: AbstractBaseUser | None = None,
) -> Job:
    """An export job on the `default` queue, sent when the transaction commits; poll /api/jobs/<id>/."""
    from annotator.tasks import corrections_export_task

    _export_format_check(export_format)
    job = job_create(
        kind=Job.Kind.EXPORT,
        payload={
            "project_id": project.pk,
            "format": export_format,
            "filters": filters.to_payload(),
            "include_images": include_images,
        },
        created_by=created_by,
    )
    job_enqueue_on_commit(job=job, send=corrections_export_task.delay)
    return job


def export_job_run(*, job: Job, on_progress: Progress) -> ExportResult:
    """Run an export job and record its file, record count and note in the job's metrics."""
    project = Project.objects.get(pk=job.payload["project_id"])
    export_format = job.payload["format"]
    extension = EXPORT_EXTENSIONS.get(export_format, "jsonl")
    result = corrections_export(
        project=project,
        export_format=export_format,
        filters=ExportFilters.from_payload(job.payload.get("filters", {})),
        name=f"project-{project.pk}-{export_format}-job-{job.pk}.{extension}",
        include_images=bool(job.payload.get("include_images", False)),
        on_progress=on_progress,
    )
    job.metrics = {"file": result.file, "records": result.records, "note": result.note}
    job.save(update_fields=["metrics"])
    return result


def export_file_name(*, job: Job) -> str | None:
    """The storage name of a finished export's file; None while it runs, after it failed, or once it is gone."""
    name = job.metrics.get("file") if job.status == Job.Status.SUCCEEDED else None
    return name if name and default_storage.exists(name) else None


# ----------------------------------------------------------------------------- records


def _image_reference(image: Image) -> dict:
    return {"name": image.original_name, "path": image.file.name}


def _jsonl_record(correction: Correction) -> dict:
    caption = correction.task.caption
    return {
        "correction_id": correction.pk,
        "caption_id": caption.pk,
        "image": _image_reference(caption.image),
        "original": correction.original_text,
        "corrected": correction.corrected_text,
        "words": correction.word_labels,
        "insertions": correction.insertions,
        "arm": correction.arm,
        "annotator": annotator_pseudonym(correction.annotator_id),
        "timings": {
            "served_at": correction.served_at.isoformat(),
            "submitted_at": correction.submitted_at.isoformat(),
            "wall_seconds": (correction.submitted_at - correction.served_at).total_seconds(),
            "active_seconds": correction.active_seconds,
        },
        "caption_source": caption.source,
        "caption_model_version": caption.model_version,
        "reward_model_version": correction.reward_model_version,
    }


def _tldr_record(correction: Correction) -> dict:
    image = correction.task.caption.image
    return {
        # labelled_jsonl_read opens images relative to the file, which lies in exports/.
        "image": posixpath.relpath(image.file.name, EXPORTS_DIR),
        "caption": correction.original_text,
        "words": [
            {"text": word["text"], "start": word["start"], "end": word["end"], "label": word["label"]}
            for word in correction.word_labels
        ],
        "category": "correction",
    }


def _weighted_words(text: str, changed: list[bool]) -> list[dict]:
    return [
        {
            "text": word,
            "start": start,
            "end": end,
            "weight": CHANGED_WORD_WEIGHT if is_changed else UNCHANGED_WORD_WEIGHT,
        }
        for (word, start, end), is_changed in zip(response_words(text), changed, strict=True)
    ]


def _dpo_record(correction: Correction) -> dict | None:
    """A preference pair, or None for a correction that changed nothing (no pair to learn from).

    {"correction_id", "image": {"name", "path"}, "chosen": corrected text, "rejected": original text,
     "chosen_words": [{"text", "start", "end", "weight"}], "rejected_words": [... same ...],
     "arm", "annotator"}

    Weights are per word with character spans of their own text, as in RLHF-V's dense DPO: a word the
    annotator changed weighs `CHANGED_WORD_WEIGHT` (5.0), every other word `UNCHANGED_WORD_WEIGHT`
    (1.0). In `rejected` the changed words are the ones labelled bad (replaced or deleted); in `chosen`
    they are the words the annotator wrote that the original did not have (replacements and
    insertions), found by the same word alignment run the other way. A trainer spreads a word's weight
    over its tokens through the tokenizer's offsets. A case-only fix changes no word and gives no pair.
    """
    rejected_changed = [word["label"] == BAD_LABEL for word in correction.word_labels]
    chosen_labels = word_labels_from_correction(correction.corrected_text, correction.original_text)
    chosen_changed = [word["label"] == BAD_LABEL for word in chosen_labels.words]
    if not any(rejected_changed) and not any(chosen_changed):
        return None
    return {
        "correction_id": correction.pk,
        "image": _image_reference(correction.task.caption.image),
        "chosen": correction.corrected_text,
        "rejected": correction.original_text,
        "chosen_words": _weighted_words(correction.corrected_text, chosen_changed),
        "rejected_words": _weighted_words(correction.original_text, rejected_changed),
        "arm": correction.arm,
        "annotator": annotator_pseudonym(correction.annotator_id),
    }


def _label_studio_record(correction: Correction) -> dict:
    """A Label Studio task for `LABEL_STUDIO_CONFIG` with the correction as its annotation.

    {"data": {"image": URL, "text": original, "image_path": storage name, "image_name", "arm",
              "model_version", "correction_id"},
     "annotations": [{"lead_time": active seconds, "result": [
        {"from_name": "corrected", "to_name": "caption", "type": "textarea", "value": {"text": [corrected]}},
        {"from_name": "bad", "to_name": "caption", "type": "labels",
         "value": {"start", "end", "text", "labels": ["bad"]}}, ... one per bad word]}]}
    """
    caption = correction.task.caption
    image = caption.image
    result = [
        {
            "id": f"c{correction.pk}-text",
            "from_name": "corrected",
            "to_name": "caption",
            "type": "textarea",
            "value": {"text": [correction.corrected_text]},
        }
    ]
    result += [
        {
            "id": f"c{correction.pk}-w{index}",
            "from_name": "bad",
            "to_name": "caption",
            "type": "labels",
            "value": {"start": word["start"], "end": word["end"], "text": word["text"], "labels": [BAD_LABEL]},
        }
        for index, word in enumerate(correction.word_labels)
        if word["label"] == BAD_LABEL
    ]
    return {
        "data": {
            "image": default_storage.url(image.file.name),
            "text": correction.original_text,
            "image_path": image.file.name,
            "image_name": image.original_name,
            "arm": correction.arm,
            "model_version": caption.model_version,
            "correction_id": correction.pk,
        },
        "annotations": [{"lead_time": correction.active_seconds, "result": result}],
    }


_RECORD_WRITERS: dict[str, Callable[[Correction], dict | None]] = {
    "jsonl": _jsonl_record,
    "tldr": _tldr_record,
    "dpo": _dpo_record,
    "label_studio": _label_studio_record,
}


# ----------------------------------------------------------------------------- Hugging Face datasets

# `datasets` and `pyarrow` are imported inside these functions: together they take a second and pull
# in pandas, which every web and worker process would otherwise pay for at start for a rare export.


def _hf_features(*, include_images: bool) -> Features:
    """The columns of the `hf_` formats: the `jsonl` record's fields, typed, plus `image_file` if asked."""
    from datasets import Features, Image, Value

    columns = {
        "correction_id": Value("int64"),
        "caption_id": Value("int64"),
        "image": {"name": Value("string"), "path": Value("string")},
        "original": Value("string"),
        "corrected": Value("string"),
        "words": [{"text": Value("string"), "start": Value("int64"), "end": Value("int64"), "label": Value("string")}],
        "insertions": [{"after_word_index": Value("int64"), "text": Value("string")}],
        "arm": Value("string"),
        "annotator": Value("string"),
        "timings": {
            "served_at": Value("string"),
            "submitted_at": Value("string"),
            "wall_seconds": Value("float64"),
            "active_seconds": Value("float64"),
        },
        "caption_source": Value("string"),
        "caption_model_version": Value("string"),
        "reward_model_version": Value("string"),
    }
    if include_images:
        columns["image_file"] = Image()
    return Features(columns)


def _hf_record(correction: Correction, *, include_images: bool) -> dict:
    record = _jsonl_record(correction)
    if include_images:
        name = correction.task.caption.image.file.name
        with default_storage.open(name, "rb") as stored:
            record["image_file"] = {"bytes": stored.read(), "path": name}
    return record


def _parquet_write(records: Iterator[dict], file: IO[bytes], *, features: Features) -> int:
    """Records as Parquet, one row group per `CHUNK_SIZE` records, so only one chunk is ever in memory.

    The schema carries the `datasets` features as metadata: `datasets` then reads `image_file` back as
    an image and not as a struct of bytes.
    """
    import pyarrow as pa
    import pyarrow.parquet as pq

    schema = features.arrow_schema
    written = 0
    rows: list[dict] = []
    with pq.ParquetWriter(file, schema) as writer:
        for record in records:
            rows.append(record)
            if len(rows) == CHUNK_SIZE:
                writer.write_table(pa.Table.from_pylist(rows, schema=schema))
                written, rows = written + len(rows), []
        # An empty export still writes its schema, so the file reads back as zero typed rows.
        if rows or not written:
            writer.write_table(pa.Table.from_pylist(rows, schema=schema))
            written += len(rows)
    return written


def _hf_dataset_write(records: Iterator[dict], file: IO[bytes], *, features: Features) -> int:
    """A `save_to_disk` directory, zipped into `file`: its files sit at the top of the archive.

    `Dataset.from_parquet` converts the Parquet file into an Arrow file on disk (in a scratch cache,
    not the user's) and memory-maps it, so the dataset never has to fit in memory.
    """
    from datasets import Dataset

    with tempfile.TemporaryDirectory(prefix="hf-export-") as scratch:
        scratch_dir = Path(scratch)
        parquet = scratch_dir / "records.parquet"
        with open(parquet, "wb") as parquet_file:
            written = _parquet_write(records, parquet_file, features=features)
        dataset = Dataset.from_parquet(str(parquet), features=features, cache_dir=str(scratch_dir / "cache"))
        saved = scratch_dir / "dataset"
        dataset.save_to_disk(str(saved))
        with zipfile.ZipFile(file, "w", compression=zipfile.ZIP_DEFLATED) as archive:
            for path in sorted(saved.rglob("*")):
                if path.is_file():
                    archive.write(path, path.relative_to(saved).as_posix())
    return written


# ----------------------------------------------------------------------------- Label Studio import


@dataclass
class LabelStudioImportReport:
    """Captions and corrections made, and each Label Studio task that could not be used, with why."""

    captions: list[int] = field(default_factory=list)
    corrections: list[int] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)


class LabelStudioFileRejected(ValueError):
    """A file that is not a Label Studio JSON export at all; the message says why."""


def label_studio_import(*, project: Project, file: IO[bytes], created_by: AbstractBaseUser) -> LabelStudioImportReport:
    """Read Label Studio tasks (an export of this module, or Label Studio's JSON export of
    `LABEL_STUDIO_CONFIG`) into `project`: each task's text becomes an imported caption of its image,
    and each annotation a correction of it, with the bad words the annotation's `bad` labels mark.

    Images are looked up in storage by `data.image_path`, else by `data.image` as a media URL, and
    copied into the project. Corrections are recorded as `created_by`'s, who imported them; as one
    person holds at most one correction of a caption, a task with several annotations gives one caption
    per annotation. An annotation without any `bad` label has its labels from the word diff, as the
    app makes them. A task without annotations is a caption waiting for detection. A malformed task is
    reported by its position and skipped; the file as a whole imports in one transaction.
    """
    try:
        tasks = json.load(file)
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise LabelStudioFileRejected(f"not a Label Studio JSON export ({error})") from None
    if not isinstance(tasks, list):
        raise LabelStudioFileRejected("a Label Studio JSON export is a list of tasks; this file holds something else")
    report = LabelStudioImportReport()
    now = timezone.now()
    with transaction.atomic():
        images_by_digest = {image.sha256: image for image in project.images.all()}
        waiting: list[int] = []
        for number, ls_task in enumerate(tasks, start=1):
            try:
                # A savepoint per task: a malformed one is reported and leaves no half of itself behind.
                with transaction.atomic():
                    _label_studio_task_import(
                        ls_task=ls_task,
                        project=project,
                        images_by_digest=images_by_digest,
                        annotator=created_by,
                        now=now,
                        report=report,
                        waiting=waiting,
                    )
            except (ValueError, KeyError, TypeError, IndexError, AttributeError, OSError) as error:
                reason = f"missing field {error.args[0]!r}" if isinstance(error, KeyError) else str(error)
                report.problems.append(f"task {number}: {reason}")
                # The savepoint may have taken an image this task added; forget it too.
                images_by_digest = {image.sha256: image for image in project.images.all()}
        if (
            waiting
            and ModelVersion.objects.filter(kind=ModelVersion.Kind.REWARD, status=ModelVersion.Status.ACTIVE).exists()
        ):
            detection_enqueue(caption_ids=waiting, created_by=created_by)
    return report


def project_create_from_label_studio(
    *, name: str, file: IO[bytes], created_by: AbstractBaseUser
) -> tuple[Project, LabelStudioImportReport]:
    """A new project holding a Label Studio file's tasks (see `label_studio_import`).

    One transaction: a file that is no Label Studio export raises `LabelStudioFileRejected` and leaves
    no empty project behind.
    """
    with transaction.atomic():
        project = project_create(name=name)
        report = label_studio_import(project=project, file=file, created_by=created_by)
    return project, report


def _label_studio_task_import(
    *,
    ls_task: dict,
    project: Project,
    images_by_digest: dict[str, Image],
    annotator: AbstractBaseUser,
    now: datetime,
    report: LabelStudioImportReport,
    waiting: list[int],
) -> None:
    """One Label Studio task: a caption per annotation (or one waiting for detection), each corrected."""
    text, image, annotations = _label_studio_task_read(ls_task, project, images_by_digest)
    data = ls_task["data"]
    arm = data.get("arm") if data.get("arm") in Arm.values else Arm.NONE
    captions: list[int] = []
    corrections: list[int] = []
    for annotation in annotations or [None]:
        (caption,) = captions_create(
            captions=[(image, text)], source=Caption.Source.IMPORT, model_version=str(data.get("model_version") or "")
        )
        captions.append(caption.pk)
        if annotation is not None:
            correction = _label_studio_correction_create(
                caption=caption, annotation=annotation, arm=arm, annotator=annotator, now=now
            )
            corrections.append(correction.pk)
    # Recorded only once the whole task is in, so a task rolled back to its savepoint leaves no ids.
    report.captions += captions
    report.corrections += corrections
    if not annotations:
        waiting += captions


def _label_studio_task_read(
    ls_task: dict, project: Project, images_by_digest: dict[str, Image]
) -> tuple[str, Image, list[dict]]:
    data = ls_task["data"]
    text = data["text"]
    if not isinstance(text, str) or not text.strip():
        raise ValueError("`data.text` (the caption) is empty")
    name = data.get("image_path") or _storage_name_from_url(str(data.get("image") or ""))
    if not name or not default_storage.exists(name):
        raise ValueError(f"image {data.get('image')!r} is not in this app's storage; upload it and set data.image_path")
    with default_storage.open(name, "rb") as stored:
        content = stored.read()
    digest = hashlib.sha256(content).hexdigest()
    if digest not in images_by_digest:
        width, height = image_validate(name=name, content=content)
        image = Image(
            project=project,
            sha256=digest,
            width=width,
            height=height,
            original_name=(data.get("image_name") or PurePosixPath(name).name)[-255:],
        )
        image.file.save(PurePosixPath(name).name, ContentFile(content), save=False)
        image.save()
        images_by_digest[digest] = image
    annotations = [a for a in ls_task.get("annotations") or [] if not a.get("was_cancelled")]
    return text.strip(), images_by_digest[digest], annotations


def _storage_name_from_url(url: str) -> str:
    """The storage name behind a media URL (`/media/images/x.png` → `images/x.png`); '' for any other URL."""
    media_url = "/" + settings.MEDIA_URL.lstrip("/")
    return url[len(media_url) :] if url.startswith(media_url) else ""


def _label_studio_correction_create(
    *, caption: Caption, annotation: dict, arm: str, annotator: AbstractBaseUser, now: datetime
) -> Correction:
    original = caption.text
    results = annotation.get("result") or []
    texts = [r["value"]["text"] for r in results if r.get("type") == "textarea"]  # Label Studio keeps a list
    corrected = texts[0][0].strip() if texts and texts[0] else original
    bad_spans = [
        (int(r["value"]["start"]), int(r["value"]["end"]))
        for r in results
        if r.get("type") == "labels" and BAD_LABEL in r["value"].get("labels", [])
    ]
    diff = word_labels_from_correction(original, corrected)
    words = diff.words
    if bad_spans:
        words = [
            {**word, "label": "bad" if any(s < word["end"] and word["start"] < e for s, e in bad_spans) else "good"}
            for word in diff.words
        ]
    task = caption.task
    assignment = Assignment.objects.create(
        task=task,
        annotator=annotator,
        arm=arm,
        status=Assignment.Status.SUBMITTED,
        leased_at=now,
        expires_at=now,
        served_at=now,
    )
    correction = Correction.objects.create(
        task=task,
        assignment=assignment,
        annotator=annotator,
        original_text=original,
        corrected_text=corrected,
        word_labels=words,
        insertions=diff.insertions,
        arm=arm,
        served_at=now,
        submitted_at=now,
        active_seconds=float(annotation.get("lead_time") or 0.0),
        client_submission_id=assignment.client_submission_id,
    )
    Task.objects.filter(pk=task.pk).update(status=Task.Status.DONE)
    return correction
