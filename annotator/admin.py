from django.contrib import admin

from annotator.models import Assignment, Caption, Correction, Detection, Image, Job, ModelVersion, Project, Task


@admin.register(Project)
class ProjectAdmin(admin.ModelAdmin):
    list_display = [
        "name",
        "overlap",
        "lease_seconds",
        "threshold",
        "arm_weight_tokens",
        "arm_weight_binary",
        "arm_weight_none",
        "created",
    ]
    search_fields = ["name"]
    filter_horizontal = ["annotators"]


@admin.register(Image)
class ImageAdmin(admin.ModelAdmin):
    list_display = ["original_name", "project", "width", "height", "created"]
    list_filter = ["project"]
    search_fields = ["original_name", "sha256"]
    readonly_fields = ["sha256", "width", "height"]


@admin.register(Caption)
class CaptionAdmin(admin.ModelAdmin):
    list_display = ["id", "text", "image", "source", "model_version", "created"]
    list_filter = ["source", "model_version", "image__project"]
    search_fields = ["text", "image__original_name"]
    raw_id_fields = ["image"]


@admin.register(Detection)
class DetectionAdmin(admin.ModelAdmin):
    list_display = ["id", "caption", "caption_p_bad", "reward_model_version", "is_current", "created"]
    list_filter = ["is_current", "reward_model_version"]
    search_fields = ["caption__text"]
    raw_id_fields = ["caption"]


class AssignmentInline(admin.TabularInline):
    model = Assignment
    fields = ["annotator", "arm", "status", "leased_at", "expires_at", "heartbeat_at"]
    readonly_fields = fields
    extra = 0
    can_delete = False


@admin.register(Task)
class TaskAdmin(admin.ModelAdmin):
    list_display = ["id", "caption", "project", "status", "priority", "created"]
    list_filter = ["status", "project"]
    search_fields = ["caption__text"]
    raw_id_fields = ["caption"]
    inlines = [AssignmentInline]


@admin.register(Assignment)
class AssignmentAdmin(admin.ModelAdmin):
    list_display = ["id", "task", "annotator", "arm", "status", "leased_at", "expires_at"]
    list_filter = ["status", "arm", "task__project"]
    search_fields = ["annotator__username", "task__caption__text"]
    raw_id_fields = ["task"]


@admin.register(Correction)
class CorrectionAdmin(admin.ModelAdmin):
    list_display = ["id", "annotator", "arm", "original_text", "corrected_text", "active_seconds", "submitted_at"]
    list_filter = ["arm", "project", "annotator"]
    search_fields = ["corrected_text", "original_text", "annotator__username"]
    raw_id_fields = ["task", "assignment"]
    date_hierarchy = "submitted_at"


@admin.register(ModelVersion)
class ModelVersionAdmin(admin.ModelAdmin):
    list_display = ["name", "kind", "status", "path", "created"]
    list_filter = ["kind", "status"]
    search_fields = ["name", "path"]


@admin.register(Job)
class JobAdmin(admin.ModelAdmin):
    list_display = ["id", "kind", "project", "status", "progress", "step", "loss", "created", "started", "finished"]
    list_filter = ["kind", "status", "project"]
    readonly_fields = [
        "progress",
        "step",
        "loss",
        "log",
        "message",
        "metrics",
        "attempts",
        "cancel_requested",
        "started",
        "finished",
    ]
