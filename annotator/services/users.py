"""People: annotators (members of the group `annotator`) and admins (staff users)."""

from __future__ import annotations

from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractBaseUser, Group

from annotator.selectors.projects import ANNOTATOR_GROUP


def user_annotator_ensure(*, username: str, password: str) -> AbstractBaseUser:
    """An annotator with this password (created, or its password reset)."""
    user, _ = get_user_model().objects.get_or_create(username=username)
    user.set_password(password)
    user.save()
    user.groups.add(Group.objects.get_or_create(name=ANNOTATOR_GROUP)[0])
    return user


def user_admin_ensure(*, username: str, password: str) -> AbstractBaseUser:
    """A staff superuser with this password (created, or its password reset)."""
    user, _ = get_user_model().objects.get_or_create(username=username)
    user.is_staff = user.is_superuser = True
    user.set_password(password)
    user.save()
    return user
