from rest_framework.permissions import BasePermission

from annotator.selectors.projects import user_is_admin, user_is_annotator


class IsAnnotator(BasePermission):
    """Annotators and admins: the people who correct captions."""

    message = "Only annotators may do this; ask an admin to add you to the group `annotator`."

    def has_permission(self, request, view) -> bool:
        return user_is_annotator(request.user)


class IsAdmin(BasePermission):
    message = "Only admins (staff users) may do this."

    def has_permission(self, request, view) -> bool:
        return user_is_admin(request.user)
