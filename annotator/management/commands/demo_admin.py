"""python manage.py demo_admin: an admin login for the demo, its password printed."""

from __future__ import annotations

import secrets

from django.core.management.base import BaseCommand

from annotator.services.users import user_admin_ensure


class Command(BaseCommand):
    help = "Create (or reset) the admin user `admin` with a new random password and print it."

    def add_arguments(self, parser):
        parser.add_argument("--username", default="admin")

    def handle(self, *args, username: str, **options):
        password = secrets.token_urlsafe(9)
        user_admin_ensure(username=username, password=password)
        self.stdout.write(f"admin login  {username} / {password}")
