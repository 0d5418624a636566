"""The project dashboard as JSON: progress, throughput and the captioner's hallucination rates over time."""

from __future__ import annotations

from dataclasses import asdict

from django.shortcuts import get_object_or_404
from django.utils import timezone
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema
from rest_framework.response import Response
from rest_framework.views import APIView

from annotator.api.permissions import IsAdmin
from annotator.models import Project
from annotator.selectors.dashboard import project_dashboard


class ProjectDashboardApi(APIView):
    """Task counts by status, corrections on each of the last 30 days, throughput per annotator, and
    TLDR's H_T, H_S, H_R of the captioner's captions per day and captioner version, beside the parser's
    exact ones where images have a shapeworld scene; `exact_rates` says which, or why there are none."""

    permission_classes = [IsAdmin]

    # The dashboard is a nest of plain dataclasses; a serializer per level would repeat every field.
    @extend_schema(responses={200: OpenApiTypes.OBJECT})
    def get(self, request, project_id: int) -> Response:
        project = get_object_or_404(Project, pk=project_id)
        return Response(asdict(project_dashboard(project=project, now=timezone.now())))
