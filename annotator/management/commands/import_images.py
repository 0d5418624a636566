"""python manage.py import_images <project> <folder>: every image (and zip) of a server folder."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from django.core.files import File
from django.core.management.base import BaseCommand, CommandError

from annotator.models import Project
from annotator.services.imports import IMAGE_SUFFIXES, images_import


class Command(BaseCommand):
    help = "Import the images (and zips of images) of a folder, recursively, into a project (by name or id)."

    def add_arguments(self, parser):
        parser.add_argument("project")
        parser.add_argument("folder", type=Path)

    def handle(self, *args, project: str, folder: Path, **options):
        found = Project.objects.filter(pk=int(project)) if project.isdigit() else Project.objects.filter(name=project)
        if not (target := found.first()):
            raise CommandError(f"no project {project!r}: create it in the admin or give an existing name or id")
        if not folder.is_dir():
            raise CommandError(f"{folder} is not a folder")
        paths = sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in {*IMAGE_SUFFIXES, ".zip"})
        report = images_import(project=target, files=_files_open(paths, folder))
        self.stdout.write(f"{len(report.created)} imported, {len(report.duplicates)} already there")
        for problem in report.problems:
            self.stderr.write(f"{problem.source}: {problem.message}")


def _files_open(paths: list[Path], folder: Path) -> Iterator[File]:
    """One open file at a time: the import reads each before asking for the next."""
    for path in paths:
        with path.open("rb") as handle:
            yield File(handle, name=str(path.relative_to(folder)))
