"""Projects: creating one with its arms, overlap, lease and highlight threshold."""

from __future__ import annotations

from collections.abc import Iterable

from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction

from annotator.models import Project


def project_create(
    *,
    name: str,
    description: str = "",
    arm_weight_tokens: int = 1,
    arm_weight_binary: int = 1,
    arm_weight_none: int = 1,
    overlap: int = 1,
    lease_seconds: int = 300,
    threshold: float = 0.5,
    annotators: Iterable[AbstractBaseUser] = (),
) -> Project:
    """A new project whose `annotators` can take its tasks at once.

    Validated here as well as in any form, so a bad call from a script raises `ValidationError` naming
    the field instead of failing on a database constraint.
    """
    project = Project(
        name=name,
        description=description,
        arm_weight_tokens=arm_weight_tokens,
        arm_weight_binary=arm_weight_binary,
        arm_weight_none=arm_weight_none,
        overlap=overlap,
        lease_seconds=lease_seconds,
        threshold=threshold,
    )
    project.full_clean()
    with transaction.atomic():
        project.save()
        project.annotators.set(annotators)
    return project
