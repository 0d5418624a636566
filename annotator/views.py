"""Server-rendered pages: the user's projects, and the annotation page (its script talks to /api/)."""

from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, render

from annotator.selectors.projects import projects_visible


@login_required
def project_list(request: HttpRequest) -> HttpResponse:
    return render(request, "annotator/project_list.html", {"projects": projects_visible(user=request.user)})


@login_required
def project_annotate(request: HttpRequest, project_id: int) -> HttpResponse:
    project = get_object_or_404(projects_visible(user=request.user), pk=project_id)
    return render(request, "annotator/annotate.html", {"project": project, "api_base": "/api"})
