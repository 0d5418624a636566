"""The data of DESIGN.md: Project → Image → Caption → Detection → Task → Assignment → Correction; ModelVersion; Job.

Overlap k is modelled as one Task per caption and one Assignment per (task, annotator): the task
holds the caption's place in the queue, each assignment is one person's lease on it. A slot is
taken by a live lease or a submitted correction; a skipped or expired lease frees it. A unique
(task, annotator) pair makes "never the same person twice on one caption" a database fact, and
counting live assignments under the task's row lock keeps "at most k people per caption" true.
Models hold fields, constraints and tiny derived properties; the rules live in `annotator.services`.
"""

from __future__ import annotations

import uuid

from django.conf import settings
from django.db import models
from django.db.models import Q


class Arm(models.TextChoices):
    """What the annotator is shown: TLDR's word highlights, one whole-caption flag, or nothing."""

    TOKENS = "tokens", "token highlights"
    BINARY = "binary", "binary flag"
    NONE = "none", "no highlight"


# What an admin sets on a project, in the order forms and the API show it.
PROJECT_SETTINGS = (
    "name",
    "description",
    "arm_weight_tokens",
    "arm_weight_binary",
    "arm_weight_none",
    "overlap",
    "lease_seconds",
    "threshold",
    "annotators",
)


class Project(models.Model):
    name = models.CharField(max_length=200, unique=True)
    description = models.TextField(blank=True)
    # Integer weights of the three arms: 1/1/1 shows each arm to a third of an annotator's tasks.
    arm_weight_tokens = models.PositiveSmallIntegerField(default=1)
    arm_weight_binary = models.PositiveSmallIntegerField(default=1)
    arm_weight_none = models.PositiveSmallIntegerField(default=1)
    overlap = models.PositiveSmallIntegerField(default=1, help_text="how many annotators correct each caption (k)")
    lease_seconds = models.PositiveIntegerField(default=300)
    threshold = models.FloatField(default=0.5, help_text="p_bad above which a word is highlighted")
    annotators = models.ManyToManyField(settings.AUTH_USER_MODEL, blank=True, related_name="projects")
    created = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["id"]
        constraints = [
            models.CheckConstraint(condition=Q(overlap__gte=1), name="project_overlap_at_least_one"),
            models.CheckConstraint(
                condition=Q(arm_weight_tokens__gt=0) | Q(arm_weight_binary__gt=0) | Q(arm_weight_none__gt=0),
                name="project_some_arm_weighted",
            ),
            models.CheckConstraint(condition=Q(threshold__gte=0) & Q(threshold__lte=1), name="project_threshold_0_1"),
        ]

    def __str__(self) -> str:
        return self.name

    @property
    def arm_weights(self) -> dict[str, int]:
        return {Arm.TOKENS: self.arm_weight_tokens, Arm.BINARY: self.arm_weight_binary, Arm.NONE: self.arm_weight_none}


class Image(models.Model):
    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="images")
    file = models.FileField(upload_to="images/%Y/%m/")
    sha256 = models.CharField(max_length=64)
    width = models.PositiveIntegerField()
    height = models.PositiveIntegerField()
    original_name = models.CharField(max_length=255, db_index=True)
    scene = models.JSONField(
        null=True,
        blank=True,
        help_text="the shapeworld scene the image was rendered from; exact ground truth for captions of it",
    )
    created = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["id"]
        constraints = [models.UniqueConstraint(fields=["project", "sha256"], name="image_unique_content_per_project")]

    def __str__(self) -> str:
        return self.original_name


class Caption(models.Model):
    class Source(models.TextChoices):
        POLICY = "policy", "written by the captioner"
        IMPORT = "import", "imported"
        HUMAN = "human", "written by a person"

    image = models.ForeignKey(Image, on_delete=models.CASCADE, related_name="captions")
    text = models.TextField()
    source = models.CharField(max_length=16, choices=Source.choices)
    model_version = models.CharField(max_length=200, blank=True, help_text="the captioner that wrote it")
    created = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["id"]

    def __str__(self) -> str:
        return self.text[:80]


class ModelVersion(models.Model):
    class Kind(models.TextChoices):
        REWARD = "reward", "reward model (TLDR)"
        POLICY = "policy", "captioner (policy)"

    class Status(models.TextChoices):
        CANDIDATE = "candidate"
        ACTIVE = "active"
        RETIRED = "retired"

    kind = models.CharField(max_length=16, choices=Kind.choices)
    name = models.CharField(max_length=200)
    path = models.CharField(max_length=500, help_text="model folder; relative paths are under TLDR_MODELS_DIR")
    metrics = models.JSONField(default=dict, blank=True)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.CANDIDATE)
    created = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-id"]
        constraints = [
            models.UniqueConstraint(fields=["kind", "name"], name="model_version_unique_name"),
            models.UniqueConstraint(
                fields=["kind"], condition=Q(status="active"), name="model_version_one_active_per_kind"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.kind}:{self.name}"


class Detection(models.Model):
    """TLDR's verdict on one caption: every word's span and p_bad; the newest one is current."""

    caption = models.ForeignKey(Caption, on_delete=models.CASCADE, related_name="detections")
    reward_model_version = models.ForeignKey(ModelVersion, on_delete=models.PROTECT, related_name="detections")
    words = models.JSONField(help_text='[{"text", "start", "end", "p_bad"}]')
    caption_p_bad = models.FloatField(help_text="the worst word's p_bad: a caption is as bad as its worst word")
    is_current = models.BooleanField(default=True)
    created = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-id"]
        constraints = [
            models.UniqueConstraint(fields=["caption"], condition=Q(is_current=True), name="detection_one_current")
        ]


class Task(models.Model):
    """A caption's place in its project's queue; up to `project.overlap` assignments take its slots."""

    class Status(models.TextChoices):
        PENDING = "pending", "waiting for detection"
        READY = "ready"
        DONE = "done", "corrected by k annotators"

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="tasks")
    caption = models.OneToOneField(Caption, on_delete=models.CASCADE, related_name="task")
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PENDING)
    priority = models.IntegerField(default=0, help_text="lower is served first")
    created = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["priority", "id"]
        indexes = [
            models.Index(fields=["project", "status", "priority", "id"], name="task_queue_order"),
            # The no-highlight arm takes pending and ready tasks: one status per index range would
            # leave PostgreSQL to sort the whole project on every such "next"; this index is in order.
            models.Index(
                fields=["project", "priority", "id"],
                condition=models.Q(status__in=["pending", "ready"]),
                name="task_queue_open_order",
            ),
        ]

    def __str__(self) -> str:
        return f"task {self.pk} ({self.status})"


class Assignment(models.Model):
    """One annotator's lease on a task: the arm it is shown, its timing events and its draft.

    A lease is live while `status` is leased and `expires_at` is in the future; an expired one
    needs no sweeper: it simply stops counting towards the task's overlap.
    """

    class Status(models.TextChoices):
        LEASED = "leased"
        SUBMITTED = "submitted"
        SKIPPED = "skipped"

    task = models.ForeignKey(Task, on_delete=models.CASCADE, related_name="assignments")
    annotator = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="assignments")
    arm = models.CharField(max_length=16, choices=Arm.choices)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.LEASED)
    client_submission_id = models.UUIDField(default=uuid.uuid4, unique=True)
    leased_at = models.DateTimeField()
    expires_at = models.DateTimeField()
    heartbeat_at = models.DateTimeField(null=True, blank=True)
    served_at = models.DateTimeField(help_text="when the task was first shown to this annotator")
    events = models.JSONField(default=list, blank=True, help_text='client events [{"type", "t_ms", "data"}]')
    draft = models.TextField(null=True, blank=True, help_text="text kept from a submit that came after the lease")

    class Meta:
        ordering = ["-id"]
        constraints = [
            models.UniqueConstraint(fields=["task", "annotator"], name="assignment_one_per_annotator_and_task")
        ]
        indexes = [
            models.Index(fields=["annotator", "status", "expires_at"], name="assignment_annotator_live"),
            models.Index(fields=["task", "status", "expires_at"], name="assignment_task_live"),
        ]

    def __str__(self) -> str:
        return f"{self.annotator} on task {self.task_id} ({self.status})"


class QueuePlace(models.Model):
    """Where an annotator stands in a project's queue: how many tasks "next" served it there, skips not counted.

    The arm of its next task is drawn from this count (`services.arms`), and "next" holds the row's
    lock while it works, so one "next" per annotator and project runs at a time. Counting the
    annotator's assignments instead scanned its whole history in the project on every "next" (12 ms
    of PostgreSQL time at 20,000 tasks, where this costs the same at any length). Only leases that
    "next" made count: assignments written otherwise (a Label Studio import) or deleted move where
    the arm blocks start, and nothing else.
    """

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="+", db_index=False)
    annotator = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    served = models.PositiveIntegerField(default=0)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["project", "annotator"], name="queue_place_one_per_annotator_and_project")
        ]

    def __str__(self) -> str:
        return f"{self.annotator} in {self.project}: {self.served} served"


def caption_words(text: str) -> int:
    """Words of a caption as the speed-up report counts them (seconds per 10 words): whitespace-separated."""
    return len(text.split())


class Correction(models.Model):
    """One annotator's submitted fix of a caption.

    `project` and `original_words` repeat what the task and the original text already say: the speed-up
    report reads them for every correction of a project, and with them (and the report index) that is
    an index-only scan in order instead of a join, a sort and 100,000 texts split in Python. `save`
    derives both; `bulk_create` callers set them.
    """

    task = models.ForeignKey(Task, on_delete=models.CASCADE, related_name="corrections")
    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="+", help_text="the task's project")
    assignment = models.OneToOneField(Assignment, on_delete=models.CASCADE, related_name="correction")
    annotator = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="corrections")
    original_text = models.TextField(help_text="the caption as it was shown")
    original_words = models.PositiveIntegerField(help_text="caption_words(original_text)")
    corrected_text = models.TextField()
    word_labels = models.JSONField(help_text='original words [{"text", "start", "end", "label": good|bad}]')
    insertions = models.JSONField(default=list, help_text='[{"after_word_index", "text"}]')
    arm = models.CharField(max_length=16, choices=Arm.choices)
    served_at = models.DateTimeField()
    submitted_at = models.DateTimeField()
    active_seconds = models.FloatField(help_text="time with an event at most 30 s after the previous one")
    client_submission_id = models.UUIDField()
    events = models.JSONField(default=list, blank=True)

    class Meta:
        ordering = ["-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["annotator", "client_submission_id"], name="correction_unique_client_submission"
            )
        ]
        indexes = [
            # The speed-up report: each annotator's corrections in submission order, read from the index
            # alone on PostgreSQL (other databases ignore `include`).
            models.Index(
                fields=["project", "annotator", "submitted_at", "id"],
                include=["arm", "active_seconds", "original_words", "task"],
                name="correction_report_order",
            )
        ]

    def __str__(self) -> str:
        return f"correction {self.pk} by {self.annotator}"

    def save(self, *args, **kwargs) -> None:
        self.project_id = self.task.project_id
        self.original_words = caption_words(self.original_text)
        super().save(*args, **kwargs)

    @property
    def is_unchanged(self) -> bool:
        return all(word["label"] == "good" for word in self.word_labels) and not self.insertions


class Job(models.Model):
    """Background work the pages poll. A training job names its project: at most one of each training
    kind is queued or running per project (a database fact), so two triggers at once make one job."""

    class Kind(models.TextChoices):
        DETECT = "detect", "score captions with TLDR"
        CAPTION = "caption", "caption images with the captioner"
        RESCORE = "rescore", "re-score unannotated captions with a new reward model"
        EXPORT = "export", "export corrections as a dataset file"
        REWARD_TRAIN = "reward_train", "retrain TLDR on corrections"
        POLICY_TRAIN = "policy_train", "train the captioner"

    class Status(models.TextChoices):
        QUEUED = "queued"
        RUNNING = "running"
        SUCCEEDED = "succeeded"
        FAILED = "failed"
        CANCELLED = "cancelled"

    kind = models.CharField(max_length=16, choices=Kind.choices)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.QUEUED)
    project = models.ForeignKey(
        Project, null=True, blank=True, on_delete=models.SET_NULL, related_name="jobs", help_text="training jobs"
    )
    payload = models.JSONField(default=dict, blank=True, help_text="the job's arguments")
    progress = models.FloatField(default=0.0)
    step = models.CharField(max_length=200, blank=True)
    loss = models.FloatField(null=True, blank=True, help_text="a training job's latest running loss")
    log = models.TextField(blank=True, help_text="the tail of the job's progress log")
    message = models.TextField(blank=True, help_text="the job's error, or a note on how it ended")
    metrics = models.JSONField(default=dict, blank=True)
    cancel_requested = models.BooleanField(
        default=False, help_text="a running job stops at its next step and ends cancelled"
    )
    attempts = models.PositiveSmallIntegerField(default=0, help_text="deliveries to a worker; above 1 after a lost one")
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)
    created = models.DateTimeField(auto_now_add=True)
    started = models.DateTimeField(null=True, blank=True)
    finished = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-id"]
        indexes = [models.Index(fields=["status", "kind"], name="job_status_kind")]
        constraints = [
            models.UniqueConstraint(
                fields=["project", "kind"],
                condition=Q(kind__in=["reward_train", "policy_train"], status__in=["queued", "running"]),
                name="job_one_active_training_per_project_and_kind",
            )
        ]

    def __str__(self) -> str:
        return f"{self.kind} job {self.pk} ({self.status})"
