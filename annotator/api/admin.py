"""Admin calls: projects, image uploads, caption imports, captioning jobs, jobs, model versions; and corrections."""

from __future__ import annotations

from dataclasses import asdict

from django.shortcuts import get_object_or_404
from drf_spectacular.utils import extend_schema
from rest_framework import generics, serializers, status, viewsets
from rest_framework.parsers import FormParser, MultiPartParser
from rest_framework.permissions import SAFE_METHODS
from rest_framework.response import Response
from rest_framework.views import APIView

from annotator.api.permissions import IsAdmin, IsAnnotator
from annotator.models import PROJECT_SETTINGS, Correction, Image, Job, ModelVersion, Project
from annotator.selectors.projects import corrections_visible, projects_visible
from annotator.services.captioning import captioning_enqueue
from annotator.services.imports import CAPTION_FORMATS, CaptionFileRejected, captions_import, images_import
from annotator.services.model_versions import model_version_activate


class ProjectSerializer(serializers.ModelSerializer):
    class Meta:
        model = Project
        fields = ["id", *PROJECT_SETTINGS, "created"]
        read_only_fields = ["created"]


class ProjectViewSet(viewsets.ModelViewSet):
    """Annotators read the projects they belong to; admins manage all of them."""

    serializer_class = ProjectSerializer
    queryset = Project.objects.all()  # the schema's view of it; requests go through get_queryset
    lookup_value_converter = "int"

    def get_permissions(self):
        return [IsAnnotator()] if self.request.method in SAFE_METHODS else [IsAdmin()]

    def get_queryset(self):
        return projects_visible(user=self.request.user).prefetch_related("annotators")


class ProblemSerializer(serializers.Serializer):
    source = serializers.CharField()
    line = serializers.IntegerField(allow_null=True)
    message = serializers.CharField()


class ImageSerializer(serializers.ModelSerializer):
    class Meta:
        model = Image
        fields = ["id", "project", "original_name", "sha256", "width", "height", "created"]


class ImageListUploadApi(generics.ListAPIView):
    permission_classes = [IsAdmin]
    serializer_class = ImageSerializer
    parser_classes = [MultiPartParser, FormParser]

    class ImageUploadSerializer(serializers.Serializer):
        files = serializers.ListField(child=serializers.FileField(), help_text="images and/or zips of images")

    class ImageImportReportSerializer(serializers.Serializer):
        created = serializers.ListField(child=serializers.IntegerField())
        duplicates = serializers.ListField(child=serializers.CharField())
        problems = ProblemSerializer(many=True)

    def get_queryset(self):
        return Image.objects.filter(project_id=self.kwargs["project_id"]).order_by("id")

    @extend_schema(
        request=ImageUploadSerializer, responses={201: ImageImportReportSerializer, 400: ImageImportReportSerializer}
    )
    def post(self, request, project_id: int) -> Response:
        project = get_object_or_404(Project, pk=project_id)
        files = request.FILES.getlist("files")
        if not files:
            return Response({"detail": "send one or more files in the form field `files`"}, status=400)
        report = images_import(project=project, files=files)
        body = self.ImageImportReportSerializer(asdict(report)).data
        return Response(body, status=status.HTTP_201_CREATED if report.created else status.HTTP_400_BAD_REQUEST)


class CaptionImportApi(APIView):
    permission_classes = [IsAdmin]
    parser_classes = [MultiPartParser, FormParser]

    class CaptionImportInputSerializer(serializers.Serializer):
        file = serializers.FileField()
        format = serializers.ChoiceField(choices=list(CAPTION_FORMATS), required=False)

    class CaptionImportReportSerializer(serializers.Serializer):
        created = serializers.ListField(child=serializers.IntegerField())
        problems = ProblemSerializer(many=True)
        detection_job_id = serializers.IntegerField(allow_null=True)

    @extend_schema(
        request=CaptionImportInputSerializer,
        responses={201: CaptionImportReportSerializer, 400: CaptionImportReportSerializer},
    )
    def post(self, request, project_id: int) -> Response:
        project = get_object_or_404(Project, pk=project_id)
        serializer = self.CaptionImportInputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        try:
            report = captions_import(
                project=project,
                file=serializer.validated_data["file"],
                file_format=serializer.validated_data.get("format"),
                created_by=request.user,
            )
        except CaptionFileRejected as error:
            return Response({"detail": str(error)}, status=status.HTTP_400_BAD_REQUEST)
        body = self.CaptionImportReportSerializer(asdict(report)).data
        return Response(body, status=status.HTTP_201_CREATED if report.created else status.HTTP_400_BAD_REQUEST)


class JobSerializer(serializers.ModelSerializer):
    class Meta:
        model = Job
        fields = [
            "id",
            "kind",
            "status",
            "project",
            "progress",
            "step",
            "loss",
            "log",
            "message",
            "metrics",
            "payload",
            "cancel_requested",
            "attempts",
            "created",
            "started",
            "finished",
        ]


class CaptionGenerateApi(APIView):
    """Caption images with the active captioner: a batched GPU job; poll /api/jobs/<id>/."""

    permission_classes = [IsAdmin]

    class CaptionGenerateInputSerializer(serializers.Serializer):
        image_ids = serializers.ListField(
            child=serializers.IntegerField(),
            required=False,
            allow_null=True,
            default=None,
            help_text="leave out to caption every image of the project",
        )

    @extend_schema(request=CaptionGenerateInputSerializer, responses={202: JobSerializer})
    def post(self, request, project_id: int) -> Response:
        project = get_object_or_404(Project, pk=project_id)
        serializer = self.CaptionGenerateInputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        job = captioning_enqueue(
            project=project, image_ids=serializer.validated_data["image_ids"], created_by=request.user
        )
        return Response(JobSerializer(job).data, status=status.HTTP_202_ACCEPTED)


class JobListApi(generics.ListAPIView):
    permission_classes = [IsAdmin]
    serializer_class = JobSerializer
    queryset = Job.objects.order_by("-id")


class JobDetailApi(generics.RetrieveAPIView):
    permission_classes = [IsAdmin]
    serializer_class = JobSerializer
    queryset = Job.objects.all()
    lookup_url_kwarg = "job_id"


class ModelVersionSerializer(serializers.ModelSerializer):
    class Meta:
        model = ModelVersion
        fields = ["id", "kind", "name", "path", "metrics", "status", "created"]


class ModelVersionListApi(generics.ListAPIView):
    permission_classes = [IsAdmin]
    serializer_class = ModelVersionSerializer
    queryset = ModelVersion.objects.order_by("-id")


class ModelVersionActivateApi(APIView):
    """Make a model version the active one of its kind; a new reward model re-scores open captions."""

    permission_classes = [IsAdmin]

    @extend_schema(request=None, responses={200: ModelVersionSerializer})
    def post(self, request, model_version_id: int) -> Response:
        version = model_version_activate(model_version=get_object_or_404(ModelVersion, pk=model_version_id))
        return Response(ModelVersionSerializer(version).data)


class CorrectionSerializer(serializers.ModelSerializer):
    class Meta:
        model = Correction
        fields = [
            "id",
            "task",
            "annotator",
            "original_text",
            "corrected_text",
            "word_labels",
            "insertions",
            "arm",
            "served_at",
            "submitted_at",
            "active_seconds",
            "client_submission_id",
        ]


class CorrectionListApi(generics.ListAPIView):
    """Corrections: an annotator sees its own; an admin sees everyone's."""

    permission_classes = [IsAnnotator]
    serializer_class = CorrectionSerializer

    def get_queryset(self):
        return corrections_visible(user=self.request.user).order_by("-id")
