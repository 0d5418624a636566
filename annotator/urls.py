from django.urls import path

from annotator import views

urlpatterns = [
    path("", views.project_list, name="project-list"),
    path("projects/new/", views.project_new, name="project-new"),
    path("projects/<int:project_id>/", views.project_admin, name="project-admin"),
    path("projects/<int:project_id>/images/", views.project_images_upload, name="project-images-upload"),
    path("projects/<int:project_id>/captions/import/", views.project_captions_import, name="project-captions-import"),
    path(
        "projects/<int:project_id>/captions/generate/",
        views.project_captions_generate,
        name="project-captions-generate",
    ),
    path("projects/<int:project_id>/exports/", views.project_exports, name="project-exports"),
    path("projects/import/label-studio/", views.project_import_label_studio, name="project-import-label-studio"),
    path("projects/<int:project_id>/report/", views.project_report_page, name="project-report"),
    path("projects/<int:project_id>/report.csv", views.project_report_csv, name="project-report-csv"),
    path("projects/<int:project_id>/dashboard/", views.project_dashboard_page, name="project-dashboard"),
    path("models/", views.model_versions_page, name="model-versions"),
    path("training/start/", views.training_start, name="training-start"),
    path("jobs/", views.job_list_page, name="job-list"),
    path("jobs/<int:job_id>/cancel/", views.job_cancel_page, name="job-cancel"),
    path("projects/<int:project_id>/annotate/", views.project_annotate, name="project-annotate"),
]
