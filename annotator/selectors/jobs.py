"""Reads of jobs: what a project's page shows of the background work."""

from __future__ import annotations

from django.db.models import BigIntegerField, Q, QuerySet
from django.db.models.fields.json import KT
from django.db.models.functions import Cast

from annotator.models import Caption, Job, Project


def jobs_recent_for_project(*, project: Project, limit: int = 10) -> QuerySet[Job]:
    """The newest jobs that touch `project`, newest first.

    Most jobs keep their arguments in `payload` rather than in a project column: a captioning job
    names its project, a detection job its captions (one import's, so all of one project), and a
    re-scoring job covers every project; training jobs have the project column. Payloads can hold
    thousands of caption ids, so they are not loaded.
    """
    first_caption_id = Cast(KT("payload__caption_ids__0"), BigIntegerField())
    return (
        Job.objects.annotate(first_caption_id=first_caption_id)
        .filter(
            Q(kind=Job.Kind.CAPTION, payload__project_id=project.pk)
            | Q(kind=Job.Kind.DETECT, first_caption_id__in=Caption.objects.filter(image__project=project).values("pk"))
            | Q(kind=Job.Kind.RESCORE)
            | Q(project=project)
        )
        .defer("payload")
        .order_by("-pk")[:limit]
    )


def jobs_recent(*, limit: int = 100) -> QuerySet[Job]:
    """The newest jobs of every kind for the jobs page, newest first, without their (long) payloads."""
    return Job.objects.select_related("project").defer("payload").order_by("-pk")[:limit]


def training_job_in_flight(*, project: Project, kind: str) -> Job | None:
    """The project's queued or running training job of `kind` (there is at most one)."""
    return Job.objects.filter(project=project, kind=kind, status__in=[Job.Status.QUEUED, Job.Status.RUNNING]).first()


def training_job_last(*, project: Project, kind: str) -> Job | None:
    """The project's newest training job of `kind`, whatever became of it."""
    return Job.objects.filter(project=project, kind=kind).order_by("-pk").first()
