"""Who sees what: annotators see the projects they are members of; admins (staff) see everything.

Roles: an admin is a Django staff user; an annotator is a member of the group `annotator` (created
by a migration). Membership of a project is `Project.annotators`.

`token_user` (or, for a logged-in browser, `user_with_role`) and `project_visible` answer the questions
every call of the task API asks (who is this, may it annotate, may it see this project) in hand-written
SQL (see `annotator.sql`).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractBaseUser
from django.db.models import Count, Q, QuerySet
from rest_framework.authtoken.models import Token

from annotator.models import Assignment, Caption, Correction, Image, Project, Task
from annotator.sql import columns_of, fetch_one, model_from_row, select_list

ANNOTATOR_GROUP = "annotator"
PROJECT_COLUMNS = columns_of(Project)
# Whether a user is in the group `annotator`, set on the user object by `token_user` and `user_with_role`,
# which read it with the user; `user_is_annotator` then asks the database nothing.
IN_ANNOTATOR_GROUP = "in_annotator_group"


def user_is_admin(user: AbstractBaseUser) -> bool:
    return bool(user.is_authenticated and user.is_staff)


def user_is_annotator(user: AbstractBaseUser) -> bool:
    if not user.is_authenticated:
        return False
    if user.is_staff:
        return True
    in_group = getattr(user, IN_ANNOTATOR_GROUP, None)
    if in_group is None:
        return user.groups.filter(name=ANNOTATOR_GROUP).exists()
    return bool(in_group)


# The user's annotator role, as a column of a statement that reads the user `u`; its parameter is the group.
_IN_ANNOTATOR_GROUP_COLUMN = """EXISTS (
    SELECT 1 FROM auth_user_groups member JOIN auth_group g ON g.id = member.group_id
    WHERE member.user_id = u.id AND g.name = %s
)"""


def token_user(*, key: str) -> tuple[AbstractBaseUser, Token] | None:
    """The user of an API token, with its annotator role read in the same statement, and the token.

    DRF's token lookup and the role check of `IsAnnotator` were two statements per call.
    """
    user_model = get_user_model()
    user_columns = columns_of(user_model)
    row = fetch_one(
        f"""
        SELECT {select_list("u", user_columns)}, {_IN_ANNOTATOR_GROUP_COLUMN}
        FROM authtoken_token t JOIN auth_user u ON u.id = t.user_id
        WHERE t.key = %s
        """,
        [ANNOTATOR_GROUP, key],
    )
    if row is None:
        return None
    user = _user_with_role_from_row(user_columns, row)
    # The token's `created` is deferred: nothing on a request reads it.
    token = model_from_row(Token, ["key", "user_id"], [key, user.pk])
    token.user = user
    return user, token


def user_with_role(*, user_id: int) -> AbstractBaseUser | None:
    """A user with its annotator role read in the same statement: what every request of a logged-in
    browser loads from its session (`annotator.backends.RoleModelBackend`)."""
    user_columns = columns_of(get_user_model())
    row = fetch_one(
        f"SELECT {select_list('u', user_columns)}, {_IN_ANNOTATOR_GROUP_COLUMN} FROM auth_user u WHERE u.id = %s",
        [ANNOTATOR_GROUP, user_id],
    )
    return None if row is None else _user_with_role_from_row(user_columns, row)


def _user_with_role_from_row(user_columns: list[str], row: tuple) -> AbstractBaseUser:
    """The user from a row of its columns followed by `_IN_ANNOTATOR_GROUP_COLUMN`."""
    user = model_from_row(get_user_model(), user_columns, row[:-1])
    setattr(user, IN_ANNOTATOR_GROUP, bool(row[-1]))
    return user


def projects_visible(*, user: AbstractBaseUser) -> QuerySet[Project]:
    return Project.objects.all() if user_is_admin(user) else Project.objects.filter(annotators=user)


def project_visible(*, user: AbstractBaseUser, project_id: int) -> Project | None:
    """`projects_visible(user=user)`'s project `project_id`, or None: the project of every "next task"."""
    sql, params = f"SELECT {select_list('p', PROJECT_COLUMNS)} FROM annotator_project p WHERE p.id = %s", [project_id]
    if not user_is_admin(user):
        sql += " AND EXISTS (SELECT 1 FROM annotator_project_annotators m WHERE m.project_id = p.id AND m.user_id = %s)"
        params.append(user.pk)
    row = fetch_one(sql, params)
    return None if row is None else model_from_row(Project, PROJECT_COLUMNS, row)


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
