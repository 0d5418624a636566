"""Who sees what: annotators see the projects they are members of; admins (staff) see everything.

Roles: an admin is a Django staff user; an annotator is a member of the group `annotator` (created
by a migration). Membership of a project is `Project.annotators`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractBaseUser
from django.db.models import Count, Q, QuerySet

from annotator.models import Assignment, Caption, Correction, Image, Project, Task

ANNOTATOR_GROUP = "annotator"


def user_is_admin(user: AbstractBaseUser) -> bool:
    return bool(user.is_authenticated and user.is_staff)


def user_is_annotator(user: AbstractBaseUser) -> bool:
    return bool(user.is_authenticated and (user.is_staff or user.groups.filter(name=ANNOTATOR_GROUP).exists()))


def projects_visible(*, user: AbstractBaseUser) -> QuerySet[Project]:
    return Project.objects.all() if user_is_admin(user) else Project.objects.filter(annotators=user)


def images_visible(*, user: AbstractBaseUser) -> QuerySet[Image]:
    return Image.objects.filter(project__in=projects_visible(user=user))


def corrections_visible(*, user: AbstractBaseUser) -> QuerySet[Correction]:
    corrections = Correction.objects.select_related("task", "annotator")
    return corrections if user_is_admin(user) else corrections.filter(annotator=user)


def annotators_all() -> QuerySet[AbstractBaseUser]:
    """Everyone an admin may add to a project: the members of the group `annotator`."""
    return get_user_model().objects.filter(groups__name=ANNOTATOR_GROUP).order_by("username")


def images_uncaptioned(*, project: Project) -> QuerySet[Image]:
    return project.images.filter(captions__isnull=True).order_by("pk")


def captions_recent(*, project: Project, limit: int = 10) -> QuerySet[Caption]:
    return Caption.objects.filter(image__project=project).select_related("image", "task").order_by("-pk")[:limit]


@dataclass(frozen=True)
class ProjectCounts:
    """Where a project's work stands: what is in it, and how far the queue has got."""

    images: int
    images_uncaptioned: int
    captions: int
    tasks_pending: int  # waiting for TLDR's detection
    tasks_ready: int
    tasks_leased: int  # someone holds a live lease on it now
    tasks_done: int
    tasks_skipped: int  # skipped by at least one annotator
    corrections: int


def project_counts(*, project: Project, now: datetime) -> ProjectCounts:
    tasks = project.tasks.aggregate(
        pending=Count("pk", filter=Q(status=Task.Status.PENDING)),
        ready=Count("pk", filter=Q(status=Task.Status.READY)),
        done=Count("pk", filter=Q(status=Task.Status.DONE)),
    )
    assignments = Assignment.objects.filter(task__project=project)
    return ProjectCounts(
        images=project.images.count(),
        images_uncaptioned=images_uncaptioned(project=project).count(),
        captions=Caption.objects.filter(image__project=project).count(),
        tasks_pending=tasks["pending"],
        tasks_ready=tasks["ready"],
        tasks_leased=assignments.filter(status=Assignment.Status.LEASED, expires_at__gt=now)
        .values("task")
        .distinct()
        .count(),
        tasks_done=tasks["done"],
        tasks_skipped=assignments.filter(status=Assignment.Status.SKIPPED).values("task").distinct().count(),
        corrections=Correction.objects.filter(task__project=project).count(),
    )
