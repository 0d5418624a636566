"""The annotation page's calls: next task, heartbeat, events, submit, skip, and the task's image."""

from __future__ import annotations

from django.http import FileResponse, Http404
from django.shortcuts import get_object_or_404
from django.utils import timezone
from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import serializers, status
from rest_framework.response import Response
from rest_framework.views import APIView

from annotator.api.permissions import IsAnnotator
from annotator.models import Arm, Task
from annotator.selectors.projects import images_visible, project_visible
from annotator.selectors.tasks import AssignmentNotFound, task_get, task_served
from annotator.services.corrections import correction_submit
from annotator.services.leases import LeaseExpired, events_record, lease_renew, task_lease_next, task_skip


class WordSerializer(serializers.Serializer):
    text = serializers.CharField()
    start = serializers.IntegerField()
    end = serializers.IntegerField()
    p_bad = serializers.FloatField(allow_null=True)


class CaptionRefSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    text = serializers.CharField()


class TaskSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    lease_expires_at = serializers.DateTimeField()
    arm = serializers.ChoiceField(choices=Arm.choices)
    image_url = serializers.CharField()
    caption = CaptionRefSerializer()
    words = WordSerializer(many=True, help_text="p_bad is null unless the arm is tokens")
    binary_flag = serializers.BooleanField(allow_null=True, help_text="arm binary: does TLDR think it has an error")
    threshold = serializers.FloatField()
    served_at = serializers.DateTimeField()
    client_submission_id = serializers.UUIDField(help_text="submit with it: a double submit makes one correction")
    draft = serializers.CharField(allow_null=True, help_text="text of a submit that came after the lease expired")


class EventSerializer(serializers.Serializer):
    type = serializers.CharField(max_length=40, help_text="shown, first_interaction, edit, undo, redo, idle, submit…")
    t_ms = serializers.IntegerField(min_value=0, help_text="the browser's clock, epoch milliseconds (Date.now())")
    data = serializers.JSONField(required=False, default=dict)


class EventsSerializer(serializers.Serializer):
    events = EventSerializer(many=True, max_length=1000)


class LeaseExpiredSerializer(serializers.Serializer):
    code = serializers.CharField(default="lease_expired")
    detail = serializers.CharField()
    corrected_text = serializers.CharField(required=False)


# The next-task and submit calls are made all day, so their serializers are built once: DRF deep-copies
# a serializer's declared fields every time one is made, which cost these calls more than the
# serializing and validating itself (bench/hot_path_profile.py). `to_representation` and
# `run_validation` keep nothing on the instance, so concurrent requests share one.
_TASK_OUTPUT = TaskSerializer()


def _lease_expired(error: LeaseExpired) -> Response:
    body = {"code": "lease_expired", "detail": error.detail}
    if error.corrected_text is not None:
        body["corrected_text"] = error.corrected_text
    return Response(body, status=status.HTTP_409_CONFLICT)


def _task_get(task_id: int) -> Task:
    task = task_get(task_id=task_id)
    if task is None:
        raise Http404("No Task matches the given query.")
    return task


class TaskNextApi(APIView):
    permission_classes = [IsAnnotator]

    @extend_schema(
        request=None,
        responses={200: inline_serializer("TaskNext", {"task": TaskSerializer()}), 204: None},
        summary="The annotator's current task (a reload resumes it) or a newly leased one; 204 when none is ready",
    )
    def post(self, request, project_id: int) -> Response:
        project = project_visible(user=request.user, project_id=project_id)
        if project is None:
            raise Http404("No Project matches the given query.")
        assignment = task_lease_next(annotator=request.user, project=project, now=timezone.now())
        if assignment is None:
            return Response(status=status.HTTP_204_NO_CONTENT)
        return Response({"task": _TASK_OUTPUT.to_representation(task_served(assignment=assignment))})


class TaskHeartbeatApi(APIView):
    permission_classes = [IsAnnotator]

    @extend_schema(
        request=None,
        responses={
            200: inline_serializer("Heartbeat", {"lease_expires_at": serializers.DateTimeField()}),
            409: LeaseExpiredSerializer,
        },
    )
    def post(self, request, task_id: int) -> Response:
        try:
            assignment = lease_renew(annotator=request.user, task=_task_get(task_id), now=timezone.now())
        except AssignmentNotFound:
            return Response({"detail": "Not found."}, status=status.HTTP_404_NOT_FOUND)
        except LeaseExpired as error:
            return _lease_expired(error)
        return Response({"lease_expires_at": serializers.DateTimeField().to_representation(assignment.expires_at)})


class TaskEventsApi(APIView):
    permission_classes = [IsAnnotator]

    @extend_schema(request=EventsSerializer, responses={204: None})
    def post(self, request, task_id: int) -> Response:
        serializer = EventsSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        try:
            events_record(annotator=request.user, task=_task_get(task_id), events=serializer.validated_data["events"])
        except AssignmentNotFound:
            return Response({"detail": "Not found."}, status=status.HTTP_404_NOT_FOUND)
        return Response(status=status.HTTP_204_NO_CONTENT)


class TaskSubmitApi(APIView):
    permission_classes = [IsAnnotator]

    class TaskSubmitInputSerializer(serializers.Serializer):
        corrected_text = serializers.CharField(max_length=5000, trim_whitespace=True)
        client_submission_id = serializers.UUIDField()
        events = EventSerializer(many=True, required=False, default=list, max_length=1000)

    class TaskSubmitOutputSerializer(serializers.Serializer):
        correction_id = serializers.IntegerField()
        next = serializers.CharField(help_text="POST here for the next task")

    @extend_schema(
        request=TaskSubmitInputSerializer,
        responses={201: TaskSubmitOutputSerializer, 200: TaskSubmitOutputSerializer, 409: LeaseExpiredSerializer},
        summary="Submit a correction; the same client_submission_id again returns the same correction (200)",
    )
    def post(self, request, task_id: int) -> Response:
        submitted = _SUBMIT_INPUT.run_validation(request.data)  # a 400 with the fields' errors, as is_valid raises
        try:
            correction, created = correction_submit(
                annotator=request.user, task_id=task_id, now=timezone.now(), **submitted
            )
        except AssignmentNotFound:
            return Response({"detail": "Not found."}, status=status.HTTP_404_NOT_FOUND)
        except LeaseExpired as error:
            return _lease_expired(error)
        body = {"correction_id": correction.pk, "next": f"/api/projects/{correction.project_id}/tasks/next/"}
        return Response(body, status=status.HTTP_201_CREATED if created else status.HTTP_200_OK)


_SUBMIT_INPUT = TaskSubmitApi.TaskSubmitInputSerializer()  # shared, as `_TASK_OUTPUT` is


class TaskSkipApi(APIView):
    permission_classes = [IsAnnotator]

    @extend_schema(request=None, responses={204: None})
    def post(self, request, task_id: int) -> Response:
        try:
            task_skip(annotator=request.user, task=_task_get(task_id))
        except AssignmentNotFound:
            return Response({"detail": "Not found."}, status=status.HTTP_404_NOT_FOUND)
        return Response(status=status.HTTP_204_NO_CONTENT)


class ImageFileApi(APIView):
    """The image file of a project the user may see, through the storage API (disk or bucket)."""

    permission_classes = [IsAnnotator]

    @extend_schema(responses={(200, "image/*"): bytes})
    def get(self, request, image_id: int) -> FileResponse:
        image = get_object_or_404(images_visible(user=request.user), pk=image_id)
        response = FileResponse(image.file.open("rb"))
        response["Cache-Control"] = "private, max-age=86400"
        return response
