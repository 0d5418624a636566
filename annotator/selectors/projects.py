"""Who sees what: annotators see the projects they are members of; admins (staff) see everything.

Roles: an admin is a Django staff user; an annotator is a member of the group `annotator` (created
by a migration). Membership of a project is `Project.annotators`.
"""

from __future__ import annotations

from django.contrib.auth.models import AbstractBaseUser
from django.db.models import QuerySet

from annotator.models import Correction, Image, Project

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
