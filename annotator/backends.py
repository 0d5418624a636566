"""Logins: Django's model backend, loading a logged-in user with its annotator role in one statement."""

from __future__ import annotations

from django.contrib.auth.backends import ModelBackend
from django.contrib.auth.models import AbstractBaseUser

from annotator.selectors.projects import user_with_role


class RoleModelBackend(ModelBackend):
    """`ModelBackend` whose `get_user`, which runs on every request of a logged-in browser, reads the
    user's annotator role with the user, so that `IsAnnotator` asks the database nothing more (as
    `token_user` does for API tokens): authenticating and checking the role of a call took three
    statements (session, user, group) and now takes two. The role is read afresh on every request,
    so taking someone out of the group `annotator` takes effect at their next call.
    """

    def get_user(self, user_id: int) -> AbstractBaseUser | None:
        user = user_with_role(user_id=user_id)
        return user if user is not None and self.user_can_authenticate(user) else None
