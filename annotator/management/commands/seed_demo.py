"""python manage.py seed_demo: the demo project, the default models, an admin and an annotator."""

from __future__ import annotations

import secrets
from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from annotator.services.demo import default_models_register, demo_project_seed
from annotator.services.users import user_admin_ensure, user_annotator_ensure


class Command(BaseCommand):
    help = "Seed a demo project of shapeworld scenes captioned and scored by the default models; print the logins."

    def add_arguments(self, parser):
        parser.add_argument("--images", type=int, default=24)
        parser.add_argument("--seed", type=int, default=0)

    def handle(self, *args, images: int, seed: int, **options):
        try:
            default_models_register(models_dir=Path(settings.TLDR_MODELS_DIR))
        except FileNotFoundError as error:
            raise CommandError(str(error)) from None
        project = demo_project_seed(n_images=images, seed=seed)
        passwords = {"admin": secrets.token_urlsafe(9), "annotator": secrets.token_urlsafe(9)}
        user_admin_ensure(username="admin", password=passwords["admin"])
        annotator = user_annotator_ensure(username="annotator", password=passwords["annotator"])
        project.annotators.add(annotator)
        ready = project.tasks.filter(status="ready").count()
        self.stdout.write(f"project {project.name!r}: {project.images.count()} images, {ready} tasks ready")
        for username, password in passwords.items():
            self.stdout.write(f"login  {username} / {password}")
