"""Admin calls of the learning loop: start a training job for a project, cancel any job."""

from __future__ import annotations

from django.shortcuts import get_object_or_404
from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.response import Response
from rest_framework.views import APIView

from annotator.api.admin import JobSerializer
from annotator.api.permissions import IsAdmin
from annotator.models import Job, Project
from annotator.services.jobs import ENDED, JobNotCancellable, job_cancel
from annotator.services.retraining import (
    POLICY,
    POLICY_METHODS,
    REWARD,
    TrainingOptions,
    TrainingRefused,
    training_enqueue,
)


class TrainingStartApi(APIView):
    """Retrain TLDR on the project's corrections (`reward`) or train the captioner (`policy`): a GPU job.

    202 with the new job; 200 with the job already queued or running for this project and kind (one
    at a time); 400 when it cannot start (too few corrections, no active model), with the reason.
    """

    permission_classes = [IsAdmin]

    class TrainingStartInputSerializer(serializers.Serializer):
        kind = serializers.ChoiceField(choices=[REWARD, POLICY])
        method = serializers.ChoiceField(
            choices=POLICY_METHODS, required=False, default="ppo_tokens", help_text="policy: how to train it"
        )
        minutes = serializers.FloatField(
            required=False, allow_null=True, default=None, min_value=0.01, help_text="training budget"
        )
        max_steps = serializers.IntegerField(required=False, allow_null=True, default=None, min_value=1)
        seed = serializers.IntegerField(required=False, default=0)
        from_base = serializers.BooleanField(
            required=False, default=False, help_text="reward: start from the captioner, not the active reward model"
        )

    class TrainingStartOutputSerializer(serializers.Serializer):
        job = JobSerializer()
        created = serializers.BooleanField()
        detail = serializers.CharField()

    @extend_schema(
        request=TrainingStartInputSerializer,
        responses={202: TrainingStartOutputSerializer, 200: TrainingStartOutputSerializer},
    )
    def post(self, request, project_id: int) -> Response:
        project = get_object_or_404(Project, pk=project_id)
        serializer = self.TrainingStartInputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        kind = serializer.validated_data.pop("kind")
        try:
            start = training_enqueue(
                project=project,
                kind=kind,
                options=TrainingOptions(**serializer.validated_data),
                created_by=request.user,
            )
        except TrainingRefused as refused:
            return Response({"detail": str(refused)}, status=status.HTTP_400_BAD_REQUEST)
        body = {"job": JobSerializer(start.job).data, "created": start.created, "detail": start.message}
        return Response(body, status=status.HTTP_202_ACCEPTED if start.created else status.HTTP_200_OK)


class JobCancelApi(APIView):
    """GET: whether the job can still be cancelled. POST: cancel it; a queued job ends at once, a running
    one stops at its next step (a training job registers nothing); 409 when it has already ended."""

    permission_classes = [IsAdmin]

    class JobCancelStateSerializer(serializers.Serializer):
        id = serializers.IntegerField()
        status = serializers.CharField()
        cancel_requested = serializers.BooleanField()
        cancellable = serializers.BooleanField()

    @extend_schema(responses={200: JobCancelStateSerializer})
    def get(self, request, job_id: int) -> Response:
        job = get_object_or_404(Job, pk=job_id)
        state = {
            "id": job.pk,
            "status": job.status,
            "cancel_requested": job.cancel_requested,
            "cancellable": job.status not in ENDED,
        }
        return Response(self.JobCancelStateSerializer(state).data)

    @extend_schema(request=None, responses={200: JobSerializer})
    def post(self, request, job_id: int) -> Response:
        try:
            job = job_cancel(job=get_object_or_404(Job, pk=job_id))
        except JobNotCancellable as error:
            return Response({"detail": str(error)}, status=status.HTTP_409_CONFLICT)
        return Response(JobSerializer(job).data)
