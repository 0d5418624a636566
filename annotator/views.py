"""Server-rendered pages: the user's projects, the annotation page (its script talks to /api/), and the
admin's project pages, which turn a form into a service call and its report into messages (post,
redirect, get: a reload never imports twice)."""

from __future__ import annotations

import csv
from collections.abc import Callable
from functools import wraps

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils import timezone
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_GET, require_POST

from annotator.forms import (
    CaptionImportForm,
    ExportForm,
    ImageUploadForm,
    LabelStudioImportForm,
    ProjectCreateForm,
    TrainingStartForm,
)
from annotator.models import Job, Project
from annotator.selectors.dashboard import (
    dashboard_charts,
    model_version_headline,
    model_versions_all,
    project_dashboard,
)
from annotator.selectors.exports import export_jobs_for_project
from annotator.selectors.jobs import jobs_recent, jobs_recent_for_project
from annotator.selectors.model_versions import ModelNotActive, model_versions_active_by_kind
from annotator.selectors.projects import captions_recent, project_counts, projects_visible, user_is_admin
from annotator.selectors.report import project_report, report_charts, report_csv_rows
from annotator.services.captioning import captioning_enqueue_uncaptioned
from annotator.services.exports import (
    EXPORT_FORMATS,
    LabelStudioFileRejected,
    LabelStudioImportReport,
    export_enqueue,
    project_create_from_label_studio,
)
from annotator.services.imports import (
    CaptionFileRejected,
    CaptionImportReport,
    ImageImportReport,
    ImportProblem,
    captions_import,
    images_import,
)
from annotator.services.jobs import JobNotCancellable, job_cancel
from annotator.services.projects import project_create
from annotator.services.retraining import TrainingRefused, training_enqueue

# A file with thousands of bad lines would bury the page; the API returns every problem.
PROBLEMS_SHOWN = 50
NAMES_SHOWN = 20

View = Callable[..., HttpResponse]


def admin_required(view: View) -> View:
    """Anonymous people are sent to the login page; signed-in people who are not admins get 403."""

    @wraps(view)
    def admin_only(request: HttpRequest, *args: object, **kwargs: object) -> HttpResponse:
        if not user_is_admin(request.user):
            raise PermissionDenied("Only admins (staff users) may do this.")
        return view(request, *args, **kwargs)

    return login_required(admin_only)


@login_required
def project_list(request: HttpRequest) -> HttpResponse:
    return render(
        request,
        "annotator/project_list.html",
        {"projects": projects_visible(user=request.user), "is_admin": user_is_admin(request.user)},
    )


@login_required
def project_annotate(request: HttpRequest, project_id: int) -> HttpResponse:
    project = get_object_or_404(projects_visible(user=request.user), pk=project_id)
    return render(request, "annotator/annotate.html", {"project": project, "api_base": "/api"})


@admin_required
def project_new(request: HttpRequest) -> HttpResponse:
    form = ProjectCreateForm(request.POST) if request.method == "POST" else ProjectCreateForm()
    if request.method == "POST" and form.is_valid():
        project = project_create(**form.cleaned_data)
        messages.success(request, f"Created project “{project.name}”: upload its images and captions below.")
        return redirect("project-admin", project_id=project.pk)
    return render(request, "annotator/project_new.html", {"form": form}, status=400 if form.errors else 200)


@admin_required
@require_GET
def project_admin(request: HttpRequest, project_id: int) -> HttpResponse:
    project = get_object_or_404(Project.objects.prefetch_related("annotators"), pk=project_id)
    context = {
        "project": project,
        "counts": project_counts(project=project, now=timezone.now()),
        "model_versions": model_versions_active_by_kind(),
        "jobs": jobs_recent_for_project(project=project),
        "captions": captions_recent(project=project),
        "image_form": ImageUploadForm(),
        "caption_form": CaptionImportForm(),
        # Two forms on one page: their own element ids, the same field names.
        "reward_form": TrainingStartForm(auto_id="reward-%s"),
        "policy_form": TrainingStartForm(auto_id="policy-%s"),
        "min_corrections": settings.TLDR_TRAIN_MIN_CORRECTIONS,
    }
    return render(request, "annotator/project_admin.html", context)


@admin_required
@require_GET
def project_report_page(request: HttpRequest, project_id: int) -> HttpResponse:
    project = get_object_or_404(Project, pk=project_id)
    report = project_report(project=project, now=timezone.now())
    return render(request, "annotator/project_report.html", {"report": report, "charts": report_charts(report)})


@admin_required
@require_GET
def project_dashboard_page(request: HttpRequest, project_id: int) -> HttpResponse:
    project = get_object_or_404(Project, pk=project_id)
    dashboard = project_dashboard(project=project, now=timezone.now())
    context = {"project": project, "dashboard": dashboard, "charts": dashboard_charts(dashboard)}
    return render(request, "annotator/project_dashboard.html", context)


@admin_required
@require_GET
def model_versions_page(request: HttpRequest) -> HttpResponse:
    versions = [(version, model_version_headline(version.metrics)) for version in model_versions_all()]
    context = {"versions": versions, "training_form": TrainingStartForm(), "has_projects": Project.objects.exists()}
    return render(request, "annotator/models.html", context)


@admin_required
@require_GET
def project_report_csv(request: HttpRequest, project_id: int) -> HttpResponse:
    project = get_object_or_404(Project, pk=project_id)
    response = HttpResponse(content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="project-{project.pk}-report.csv"'
    csv.writer(response).writerows(report_csv_rows(project_report(project=project, now=timezone.now())))
    return response


@admin_required
@require_POST
def project_images_upload(request: HttpRequest, project_id: int) -> HttpResponse:
    project = get_object_or_404(Project, pk=project_id)
    form = ImageUploadForm(request.POST, request.FILES)
    if form.is_valid():
        _messages_image_report(request, images_import(project=project, files=form.cleaned_data["files"]))
    else:
        _messages_form_errors(request, form)
    return redirect("project-admin", project_id=project.pk)


@admin_required
@require_POST
def project_captions_import(request: HttpRequest, project_id: int) -> HttpResponse:
    project = get_object_or_404(Project, pk=project_id)
    form = CaptionImportForm(request.POST, request.FILES)
    if not form.is_valid():
        _messages_form_errors(request, form)
        return redirect("project-admin", project_id=project.pk)
    upload = form.cleaned_data["file"]
    try:
        report = captions_import(
            project=project, file=upload, file_format=form.cleaned_data["file_format"] or None, created_by=request.user
        )
    except CaptionFileRejected as error:
        messages.error(request, str(error))
    else:
        _messages_caption_report(request, report, file_name=upload.name)
    return redirect("project-admin", project_id=project.pk)


@admin_required
@require_POST
def project_captions_generate(request: HttpRequest, project_id: int) -> HttpResponse:
    project = get_object_or_404(Project, pk=project_id)
    try:
        job = captioning_enqueue_uncaptioned(project=project, created_by=request.user)
    except ModelNotActive as error:
        messages.error(request, str(error))
    else:
        if job is None:
            messages.info(request, "Every image of the project has a caption or is being captioned: nothing to do.")
        else:
            count = _count(len(job.payload["image_ids"]), "image")
            messages.success(request, f"Captioning {count} without a caption: job #{job.pk}, its progress is below.")
    return redirect("project-admin", project_id=project.pk)


def _messages_image_report(request: HttpRequest, report: ImageImportReport) -> None:
    if report.created:
        names = _names(report.created_names)
        messages.success(request, f"Imported {_count(len(report.created), 'image')}: {names}.")
    if report.duplicates:
        names = _names(report.duplicates)
        messages.info(request, f"Already in the project, not stored again: {names}.")
    if not (report.created or report.duplicates or report.problems):
        messages.warning(request, "Nothing imported: the upload held no image files.")
    _messages_problems(request, report.problems)


def _messages_caption_report(request: HttpRequest, report: CaptionImportReport, *, file_name: str) -> None:
    if report.created:
        count = _count(len(report.created), "caption")
        if report.detection_job_id is not None:
            scoring = f"TLDR scores them in job #{report.detection_job_id}"
        else:
            scoring = "no reward model is active, so their tasks wait for one (activate it in the admin)"
        messages.success(request, f"Imported {count} from {file_name}; {scoring}.")
    elif not report.problems:
        messages.warning(request, f"Nothing imported: {file_name} holds no captions.")
    _messages_problems(request, report.problems)


def _messages_problems(request: HttpRequest, problems: list[ImportProblem]) -> None:
    for problem in problems[:PROBLEMS_SHOWN]:
        messages.error(request, str(problem))
    if len(problems) > PROBLEMS_SHOWN:
        hidden = _count(len(problems) - PROBLEMS_SHOWN, "more problem")
        messages.error(request, f"…and {hidden}, not listed here; the import API reports every one.")


def _messages_form_errors(request: HttpRequest, form: ImageUploadForm | CaptionImportForm | TrainingStartForm) -> None:
    for errors in form.errors.values():
        for error in errors:
            messages.error(request, error)


def _count(number: int, noun: str) -> str:
    return f"{number} {noun}{'' if number == 1 else 's'}"


def _names(names: list[str]) -> str:
    shown = ", ".join(names[:NAMES_SHOWN])
    return shown if len(names) <= NAMES_SHOWN else f"{shown} and {len(names) - NAMES_SHOWN} more"


# ----------------------------------------------------------------------------- exports and Label Studio import


@admin_required
def project_exports(request: HttpRequest, project_id: int) -> HttpResponse:
    """The export form (POST starts a job, then back here) and the project's export jobs with their files."""
    project = get_object_or_404(Project, pk=project_id)
    form = ExportForm(request.POST) if request.method == "POST" else ExportForm()
    if request.method == "POST" and form.is_valid():
        job = export_enqueue(
            project=project,
            export_format=form.cleaned_data["format"],
            filters=form.filters(),
            include_images=form.cleaned_data["include_images"],
            created_by=request.user,
        )
        messages.success(request, f"Exporting as {job.payload['format']}: job #{job.pk}, its progress is below.")
        return redirect("project-exports", project_id=project.pk)
    context = {"project": project, "form": form, "jobs": export_jobs_for_project(project=project)}
    context["formats"] = EXPORT_FORMATS
    return render(request, "annotator/project_exports.html", context, status=400 if form.errors else 200)


@admin_required
def project_import_label_studio(request: HttpRequest) -> HttpResponse:
    """Upload a Label Studio JSON file into a new project; its report goes to the new project's page."""
    form = LabelStudioImportForm(request.POST, request.FILES) if request.method == "POST" else LabelStudioImportForm()
    if request.method == "POST" and form.is_valid():
        upload = form.cleaned_data["file"]
        try:
            project, report = project_create_from_label_studio(
                name=form.cleaned_data["name"], file=upload, created_by=request.user
            )
        except LabelStudioFileRejected as error:
            messages.error(request, f"{upload.name}: {error}; no project was created.")
            return redirect("project-import-label-studio")
        _messages_label_studio_report(request, report, file_name=upload.name)
        return redirect("project-admin", project_id=project.pk)
    status = 400 if form.errors else 200
    return render(request, "annotator/project_import_label_studio.html", {"form": form}, status=status)


def _messages_label_studio_report(request: HttpRequest, report: LabelStudioImportReport, *, file_name: str) -> None:
    if report.captions:
        captions, corrections = _count(len(report.captions), "caption"), _count(len(report.corrections), "correction")
        messages.success(request, f"Imported {captions} and {corrections} from {file_name}.")
    elif not report.problems:
        messages.warning(request, f"Nothing imported: {file_name} holds no Label Studio tasks.")
    for problem in report.problems[:PROBLEMS_SHOWN]:
        messages.error(request, problem)
    if len(report.problems) > PROBLEMS_SHOWN:
        messages.error(request, f"…and {_count(len(report.problems) - PROBLEMS_SHOWN, 'more problem')}, not listed.")


# ----------------------------------------------------------------------------- the learning loop and its jobs


@admin_required
@require_GET
def job_list_page(request: HttpRequest) -> HttpResponse:
    """Every recent job with its live progress, loss, log tail, metrics and a cancel button."""
    return render(request, "annotator/jobs.html", {"jobs": jobs_recent()})


@admin_required
@require_POST
def job_cancel_page(request: HttpRequest, job_id: int) -> HttpResponse:
    job = get_object_or_404(Job, pk=job_id)
    try:
        job = job_cancel(job=job)
    except JobNotCancellable as error:
        messages.info(request, str(error))
    else:
        if job.status == Job.Status.CANCELLED:
            messages.success(request, f"Cancelled job #{job.pk} before it started.")
        else:
            messages.success(request, f"Asked job #{job.pk} to stop: it ends cancelled at its next step.")
    return redirect("job-list")


@admin_required
@require_POST
def training_start(request: HttpRequest) -> HttpResponse:
    """The learning loop's buttons: queue a training job and follow it on the jobs page.

    A refusal (too few corrections, no active model) goes back to the page the button was on.
    """
    back = request.POST.get("next", "")
    if not url_has_allowed_host_and_scheme(back, allowed_hosts={request.get_host()}, require_https=request.is_secure()):
        back = reverse("job-list")
    form = TrainingStartForm(request.POST)
    if not form.is_valid():
        _messages_form_errors(request, form)
        return redirect(back)
    try:
        start = training_enqueue(
            project=form.cleaned_data["project"],
            kind=form.cleaned_data["kind"],
            options=form.options(),
            created_by=request.user,
        )
    except TrainingRefused as refused:
        messages.error(request, str(refused))
        return redirect(back)
    (messages.success if start.created else messages.info)(request, start.message)
    return redirect("job-list")
