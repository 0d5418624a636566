"""API authentication: DRF's token scheme, with the role read in the same statement as the user."""

from django.utils.translation import gettext_lazy as _
from rest_framework import authentication, exceptions

from annotator.selectors.projects import token_user


class TokenAuthentication(authentication.TokenAuthentication):
    """DRF's token authentication (same header, same errors), reading the user's role with the user.

    Every call of the task API checks the role (`IsAnnotator`) right after authenticating: one
    statement answers both.
    """

    def authenticate_credentials(self, key: str) -> tuple:
        found = token_user(key=key)
        if found is None:
            raise exceptions.AuthenticationFailed(_("Invalid token."))
        user, token = found
        if not user.is_active:
            raise exceptions.AuthenticationFailed(_("User inactive or deleted."))
        return user, token
