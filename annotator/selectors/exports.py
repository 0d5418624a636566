"""Reads of exports: the export jobs a project's export page lists."""

from __future__ import annotations

from django.db.models import QuerySet

from annotator.models import Job, Project


def export_jobs_for_project(*, project: Project, limit: int = 20) -> QuerySet[Job]:
    """The project's newest export jobs, newest first; an export's payload is small, so it is loaded."""
    return Job.objects.filter(kind=Job.Kind.EXPORT, payload__project_id=project.pk).order_by("-pk")[:limit]
