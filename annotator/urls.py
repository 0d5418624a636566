from django.urls import path

from annotator import views

urlpatterns = [
    path("", views.project_list, name="project-list"),
    path("projects/<int:project_id>/annotate/", views.project_annotate, name="project-annotate"),
]
