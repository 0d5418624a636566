"""The speed-up report as JSON: the numbers of the admin's report page, for a notebook or a dashboard."""

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
from annotator.selectors.report import project_report


class ProjectReportApi(APIView):
    """Median seconds per caption per arm, speed-ups over the token arm with bootstrap intervals,
    the learning effect and agreement between annotators; pooled and per annotator. Ratios an arm
    has too few corrections for are null, with the reason beside them."""

    permission_classes = [IsAdmin]

    # The report is a nest of plain dataclasses; a serializer per level would repeat every field.
    @extend_schema(responses={200: OpenApiTypes.OBJECT})
    def get(self, request, project_id: int) -> Response:
        project = get_object_or_404(Project, pk=project_id)
        return Response(asdict(project_report(project=project, now=timezone.now())))
