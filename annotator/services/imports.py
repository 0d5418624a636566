"""Getting work in: image uploads (files or a zip) and caption files (JSONL, CSV, COCO captions).

Every bad input is reported, naming the file (and the line) and what is wrong; the good ones are
imported. Each import runs in one transaction, so a crash half-way leaves nothing half-imported.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import zipfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import PurePosixPath
from typing import IO, Protocol

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.core.files.base import ContentFile
from django.db import transaction
from PIL import Image as PilImage
from PIL import UnidentifiedImageError

from annotator.models import Caption, Image, ModelVersion, Project
from annotator.services.captions import captions_create
from annotator.services.detection import detection_enqueue

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".gif", ".bmp", ".webp", ".tif", ".tiff"}


class UploadedFile(Protocol):
    name: str
    size: int

    def read(self, size: int = -1) -> bytes: ...


@dataclass
class ImportProblem:
    """One rejected input: the file (and line, counting from 1) and what to do about it."""

    source: str
    message: str
    line: int | None = None
    unit: str = "line"  # what `line` counts: a text file's lines, or a COCO file's annotations

    def __str__(self) -> str:
        """The problem as a person reads it: where it is, then what is wrong, naming the file once."""
        if self.line is not None:
            return f"{self.source}, {self.unit} {self.line}: {self.message}"
        return self.message if self.message.startswith(self.source) else f"{self.source}: {self.message}"


@dataclass
class ImageImportReport:
    created: list[int] = field(default_factory=list)
    created_names: list[str] = field(default_factory=list)
    duplicates: list[str] = field(default_factory=list)
    problems: list[ImportProblem] = field(default_factory=list)


@dataclass
class CaptionImportReport:
    created: list[int] = field(default_factory=list)
    problems: list[ImportProblem] = field(default_factory=list)
    detection_job_id: int | None = None


class ImageRejected(ValueError):
    """An upload that is not a usable image; the message says why."""


class CaptionFileRejected(ValueError):
    """A caption file that cannot be read at all; the message says why."""


# ----------------------------------------------------------------------------- images


def images_import(*, project: Project, files: Iterable[UploadedFile]) -> ImageImportReport:
    """Store every valid image of `files` (zips are opened) in `project`; report the rest.

    An image already in the project (same bytes) is reported as a duplicate and not stored twice.
    """
    report = ImageImportReport()
    with transaction.atomic():
        known = set(project.images.values_list("sha256", flat=True))
        for name, content in _image_uploads(files, report):
            try:
                width, height = image_validate(name=name, content=content)
            except ImageRejected as error:
                report.problems.append(ImportProblem(source=name, message=str(error)))
                continue
            digest = hashlib.sha256(content).hexdigest()
            if digest in known:
                report.duplicates.append(name)
                continue
            known.add(digest)
            image = Image(project=project, sha256=digest, width=width, height=height, original_name=name[-255:])
            image.file.save(PurePosixPath(name).name, ContentFile(content), save=False)
            image.save()
            report.created.append(image.pk)
            report.created_names.append(image.original_name)
    return report


def image_validate(*, name: str, content: bytes) -> tuple[int, int]:
    """Width and height of an image upload, or `ImageRejected` saying what is wrong with it."""
    if len(content) > settings.TLDR_MAX_UPLOAD_BYTES:
        raise ImageRejected(
            f"{name} is {len(content):,} bytes, over the limit of {settings.TLDR_MAX_UPLOAD_BYTES:,}; resize it"
        )
    try:
        # The header alone gives the size: a decompression bomb is refused before any pixel is decoded.
        with PilImage.open(io.BytesIO(content)) as header:
            width, height = header.size
            if width * height > settings.TLDR_MAX_IMAGE_PIXELS:
                raise ImageRejected(
                    f"{name} is {width}x{height} pixels, over the limit of {settings.TLDR_MAX_IMAGE_PIXELS:,}; "
                    "resize it"
                )
            header.verify()
        # verify() checks the structure but not every pixel: decoding catches truncated data.
        with PilImage.open(io.BytesIO(content)) as pixels:
            pixels.load()
    except UnidentifiedImageError:
        raise ImageRejected(f"{name} is not an image (PNG, JPEG, GIF, BMP, WebP or TIFF)") from None
    except (OSError, SyntaxError, ValueError, PilImage.DecompressionBombError) as error:
        raise ImageRejected(f"{name} is a corrupt or truncated image ({error})") from None
    return width, height


def _image_uploads(files: Iterable[UploadedFile], report: ImageImportReport) -> Iterator[tuple[str, bytes]]:
    """(name, bytes) of every uploaded image, zips opened; oversized and unsafe uploads reported."""
    for upload in files:
        if upload.size > max(settings.TLDR_MAX_UPLOAD_BYTES, settings.TLDR_MAX_ZIP_BYTES):
            report.problems.append(ImportProblem(source=upload.name, message="the upload is over the size limit"))
            continue
        if upload.name.lower().endswith(".zip"):
            try:
                yield from _zip_images(upload, report)
            except ImageRejected as error:
                report.problems.append(ImportProblem(source=upload.name, message=str(error)))
            continue
        if upload.size > settings.TLDR_MAX_UPLOAD_BYTES:
            report.problems.append(
                ImportProblem(
                    source=upload.name,
                    message=f"{upload.size:,} bytes, over the limit of {settings.TLDR_MAX_UPLOAD_BYTES:,}",
                )
            )
            continue
        yield upload.name, upload.read()


def _zip_images(upload: UploadedFile, report: ImageImportReport) -> Iterator[tuple[str, bytes]]:
    """The images inside a zip; a zip with a path leaving its folder is refused as a whole."""
    try:
        archive = zipfile.ZipFile(io.BytesIO(upload.read()))
    except zipfile.BadZipFile:
        raise ImageRejected(f"{upload.name} is not a readable zip file") from None
    with archive:
        members = [info for info in archive.infolist() if not info.is_dir()]
        for info in members:
            parts = PurePosixPath(info.filename.replace("\\", "/")).parts
            if info.filename.startswith(("/", "\\")) or ".." in parts or ":" in info.filename:
                raise ImageRejected(
                    f"{upload.name} holds an unsafe path {info.filename!r} (absolute or with '..'); "
                    "nothing from it was imported: re-create the zip with relative paths"
                )
        if sum(info.file_size for info in members) > settings.TLDR_MAX_ZIP_BYTES:
            raise ImageRejected(f"{upload.name} unpacks to more than {settings.TLDR_MAX_ZIP_BYTES:,} bytes")
        for info in members:
            if (
                info.filename.startswith("__MACOSX/")
                or PurePosixPath(info.filename).suffix.lower() not in IMAGE_SUFFIXES
            ):
                continue
            if info.file_size > settings.TLDR_MAX_UPLOAD_BYTES:
                message = f"unpacks to {info.file_size:,} bytes, over the limit of {settings.TLDR_MAX_UPLOAD_BYTES:,}"
                report.problems.append(ImportProblem(source=f"{upload.name}:{info.filename}", message=message))
                continue
            yield info.filename, archive.read(info)


# ----------------------------------------------------------------------------- captions


def captions_import_jsonl(
    *, project: Project, file: IO[bytes], created_by: AbstractBaseUser | None = None
) -> CaptionImportReport:
    """One JSON object per line: {"image": file name, "caption": text}."""
    rows: list[tuple[int, object]] = []
    problems: list[ImportProblem] = []
    for number, line in enumerate(_text(file).splitlines(), start=1):
        if not line.strip():
            continue
        try:
            rows.append((number, json.loads(line)))
        except json.JSONDecodeError as error:
            problems.append(ImportProblem(source=_name(file), line=number, message=f"not valid JSON ({error.msg})"))
    return _captions_import(project=project, file=file, rows=rows, problems=problems, created_by=created_by)


def captions_import_csv(
    *, project: Project, file: IO[bytes], created_by: AbstractBaseUser | None = None
) -> CaptionImportReport:
    """A header row naming the columns `image` and `caption`, then one caption per row."""
    reader = csv.DictReader(io.StringIO(_text(file)))
    if reader.fieldnames is None or not {"image", "caption"} <= set(reader.fieldnames):
        problem = ImportProblem(
            source=_name(file), line=1, message="the header must name the columns `image` and `caption`"
        )
        return CaptionImportReport(problems=[problem])
    rows: list[tuple[int, object]] = []
    problems: list[ImportProblem] = []
    try:
        for record in reader:
            rows.append((reader.line_num, record))
    except csv.Error as error:
        problems.append(ImportProblem(source=_name(file), line=reader.line_num, message=f"unreadable CSV ({error})"))
    return _captions_import(project=project, file=file, rows=rows, problems=problems, created_by=created_by)


def captions_import_coco(
    *, project: Project, file: IO[bytes], created_by: AbstractBaseUser | None = None
) -> CaptionImportReport:
    """COCO captions JSON: `images` [{id, file_name}] and `annotations` [{image_id, caption}].

    A problem's `line` is the annotation's position (from 1) in `annotations`, and its unit says so.
    """
    try:
        coco = json.loads(_text(file))
        names = {entry["id"]: entry["file_name"] for entry in coco["images"]}
        annotations = coco["annotations"]
    except (json.JSONDecodeError, KeyError, TypeError) as error:
        problem = ImportProblem(
            source=_name(file), message=f"not COCO captions JSON (needs `images` and `annotations`): {error}"
        )
        return CaptionImportReport(problems=[problem])
    rows: list[tuple[int, object]] = []
    problems: list[ImportProblem] = []
    for number, annotation in enumerate(annotations, start=1):
        if not isinstance(annotation, dict) or annotation.get("image_id") not in names:
            problems.append(
                ImportProblem(
                    source=_name(file), line=number, unit="annotation", message="`image_id` names no entry of `images`"
                )
            )
            continue
        rows.append((number, {"image": names[annotation["image_id"]], "caption": annotation.get("caption")}))
    return _captions_import(
        project=project, file=file, rows=rows, problems=problems, created_by=created_by, unit="annotation"
    )


CAPTION_FORMATS = {"jsonl": "JSON Lines", "csv": "CSV", "coco": "COCO captions JSON"}


def captions_import(
    *, project: Project, file: IO[bytes], file_format: str | None, created_by: AbstractBaseUser | None = None
) -> CaptionImportReport:
    """Import a caption file in `file_format`, or in the format its name says (.jsonl, .csv, .json for COCO).

    Raises `CaptionFileRejected` when the format is neither given nor told by the name, or the file is not UTF-8.
    """
    file_format = file_format or _format_from_name(file.name)
    importers = {"jsonl": captions_import_jsonl, "csv": captions_import_csv, "coco": captions_import_coco}
    if file_format not in importers:
        raise CaptionFileRejected(
            f"{_name(file)}: say which format it is (jsonl, csv or coco), or name the file .jsonl, .csv or .json"
        )
    return importers[file_format](project=project, file=file, created_by=created_by)


def _captions_import(
    *,
    project: Project,
    file: IO[bytes],
    rows: list[tuple[int, object]],
    problems: list[ImportProblem],
    created_by: AbstractBaseUser | None,
    unit: str = "line",
) -> CaptionImportReport:
    """Import every valid row in one transaction, report the others by line, and queue detection."""
    report = CaptionImportReport(problems=problems)
    by_name: dict[str, list[Image]] = {}
    for image in project.images.all():
        by_name.setdefault(image.original_name, []).append(image)
        by_name.setdefault(PurePosixPath(image.original_name).name, []).append(image)
    valid: list[tuple[Image, str]] = []
    for number, row in rows:
        image_name = row.get("image") if isinstance(row, dict) else None
        text = row.get("caption") if isinstance(row, dict) else None
        if not isinstance(image_name, str) or not image_name or not isinstance(text, str):
            message = 'needs "image" (a file name) and "caption" (text)'
        elif not text.strip():
            message = "the caption is empty"
        elif not (matches := by_name.get(image_name) or by_name.get(PurePosixPath(image_name).name)):
            message = f"no image named {image_name!r} in project {project.name!r}: upload it first"
        elif len({image.pk for image in matches}) > 1:
            message = f"{image_name!r} names several images of the project; use its full uploaded path"
        else:
            valid.append((matches[0], text.strip()))
            continue
        report.problems.append(ImportProblem(source=_name(file), line=number, unit=unit, message=message))
    report.problems.sort(key=lambda problem: problem.line or 0)
    with transaction.atomic():
        created = captions_create(captions=valid, source=Caption.Source.IMPORT)
        report.created = [caption.pk for caption in created]
        if (
            created
            and ModelVersion.objects.filter(kind=ModelVersion.Kind.REWARD, status=ModelVersion.Status.ACTIVE).exists()
        ):
            report.detection_job_id = detection_enqueue(caption_ids=report.created, created_by=created_by).pk
    return report


def _format_from_name(name: str) -> str | None:
    """The caption format a file name says: .jsonl, .csv, or .json (COCO captions); None for anything else."""
    return {".jsonl": "jsonl", ".csv": "csv", ".json": "coco"}.get(PurePosixPath(name.lower()).suffix)


def _text(file: IO[bytes]) -> str:
    raw = file.read()
    try:
        return raw.decode("utf-8-sig") if isinstance(raw, bytes) else raw
    except UnicodeDecodeError as error:
        raise CaptionFileRejected(f"{_name(file)} is not UTF-8 text ({error}); save it as UTF-8") from None


def _name(file: IO[bytes]) -> str:
    return PurePosixPath(getattr(file, "name", "upload") or "upload").name
