from django.urls import path
from rest_framework.authtoken.views import obtain_auth_token
from rest_framework.routers import SimpleRouter

from annotator.api import admin, dashboard, exports, report, tasks, training

router = SimpleRouter()
router.register("projects", admin.ProjectViewSet, basename="api-project")

urlpatterns = [
    path("auth/token/", obtain_auth_token, name="api-token"),
    path("projects/<int:project_id>/tasks/next/", tasks.TaskNextApi.as_view(), name="api-task-next"),
    path("tasks/<int:task_id>/heartbeat/", tasks.TaskHeartbeatApi.as_view(), name="api-task-heartbeat"),
    path("tasks/<int:task_id>/events/", tasks.TaskEventsApi.as_view(), name="api-task-events"),
    path("tasks/<int:task_id>/submit/", tasks.TaskSubmitApi.as_view(), name="api-task-submit"),
    path("tasks/<int:task_id>/skip/", tasks.TaskSkipApi.as_view(), name="api-task-skip"),
    path("images/<int:image_id>/file/", tasks.ImageFileApi.as_view(), name="api-image-file"),
    path("projects/<int:project_id>/images/", admin.ImageListUploadApi.as_view(), name="api-project-images"),
    path("projects/<int:project_id>/captions/import/", admin.CaptionImportApi.as_view(), name="api-caption-import"),
    path(
        "projects/<int:project_id>/captions/generate/", admin.CaptionGenerateApi.as_view(), name="api-caption-generate"
    ),
    path("jobs/", admin.JobListApi.as_view(), name="api-jobs"),
    path("jobs/<int:job_id>/", admin.JobDetailApi.as_view(), name="api-job"),
    path("jobs/<int:job_id>/cancel/", training.JobCancelApi.as_view(), name="api-job-cancel"),
    path("projects/<int:project_id>/retrain/", training.TrainingStartApi.as_view(), name="api-project-retrain"),
    path("model-versions/", admin.ModelVersionListApi.as_view(), name="api-model-versions"),
    path(
        "model-versions/<int:model_version_id>/activate/",
        admin.ModelVersionActivateApi.as_view(),
        name="api-model-version-activate",
    ),
    path("corrections/", admin.CorrectionListApi.as_view(), name="api-corrections"),
    path("projects/<int:project_id>/exports/", exports.ExportCreateApi.as_view(), name="api-project-exports"),
    path("exports/<int:job_id>/download/", exports.ExportDownloadApi.as_view(), name="api-export-download"),
    path("projects/<int:project_id>/report/", report.ProjectReportApi.as_view(), name="api-project-report"),
    path("projects/<int:project_id>/dashboard/", dashboard.ProjectDashboardApi.as_view(), name="api-project-dashboard"),
    *router.urls,
]
