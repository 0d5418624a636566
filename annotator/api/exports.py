"""Admin calls for dataset exports: start one as a job, then download its file once the job has finished."""

from __future__ import annotations

from django.core.files.storage import default_storage
from django.http import FileResponse
from django.shortcuts import get_object_or_404
from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.response import Response
from rest_framework.views import APIView

from annotator.api.admin import JobSerializer
from annotator.api.permissions import IsAdmin
from annotator.models import Arm, Job, Project
from annotator.services.exports import EXPORT_FORMATS, ExportFilters, export_enqueue, export_file_name


class ExportFiltersSerializer(serializers.Serializer):
    date_from = serializers.DateField(required=False, allow_null=True, help_text="first submit day, inclusive")
    date_to = serializers.DateField(required=False, allow_null=True, help_text="last submit day, inclusive")
    annotator_id = serializers.IntegerField(required=False, allow_null=True)
    arm = serializers.ChoiceField(choices=Arm.choices, required=False, allow_null=True)
    only_corrected = serializers.BooleanField(required=False, default=False, help_text="leave out unchanged captions")


class ExportCreateApi(APIView):
    """Export the project's corrections as a dataset file: a job on the default queue; poll /api/jobs/<id>/."""

    permission_classes = [IsAdmin]

    class ExportInputSerializer(serializers.Serializer):
        format = serializers.CharField()
        filters = ExportFiltersSerializer(required=False, default=dict)
        include_images = serializers.BooleanField(
            required=False, default=False, help_text="hf_ formats: embed each image's bytes as a datasets Image"
        )

        def validate_format(self, value: str) -> str:
            if value not in EXPORT_FORMATS:
                raise serializers.ValidationError(
                    f"unknown export format {value!r}; use one of {', '.join(EXPORT_FORMATS)}"
                )
            return value

    @extend_schema(request=ExportInputSerializer, responses={202: JobSerializer})
    def post(self, request, project_id: int) -> Response:
        project = get_object_or_404(Project, pk=project_id)
        serializer = self.ExportInputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        job = export_enqueue(
            project=project,
            export_format=serializer.validated_data["format"],
            filters=ExportFilters(**serializer.validated_data["filters"]),
            include_images=serializer.validated_data["include_images"],
            created_by=request.user,
        )
        return Response(JobSerializer(job).data, status=status.HTTP_202_ACCEPTED)


class ExportDownloadApi(APIView):
    """The finished export's file, streamed; 409 while the job runs or after it failed."""

    permission_classes = [IsAdmin]

    @extend_schema(responses={(200, "application/octet-stream"): bytes})
    def get(self, request, job_id: int):
        job = get_object_or_404(Job, pk=job_id, kind=Job.Kind.EXPORT)
        if job.status in (Job.Status.QUEUED, Job.Status.RUNNING):
            detail = (
                f"export job {job.pk} is {job.status} ({job.progress:.0%}); poll /api/jobs/{job.pk}/ until it succeeds"
            )
            return Response({"detail": detail}, status=status.HTTP_409_CONFLICT)
        if job.status != Job.Status.SUCCEEDED:
            detail = (
                f"export job {job.pk} {job.status} and wrote no file; see /api/jobs/{job.pk}/ and start a new export"
            )
            return Response({"detail": detail}, status=status.HTTP_409_CONFLICT)
        name = export_file_name(job=job)
        if name is None:
            return Response(
                {"detail": f"the file of export job {job.pk} is gone from storage; start a new export"},
                status=status.HTTP_404_NOT_FOUND,
            )
        return FileResponse(default_storage.open(name, "rb"), as_attachment=True, filename=name.rsplit("/", 1)[-1])
