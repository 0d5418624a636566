"""The learning loop: corrections retrain TLDR, and TLDR's rewards train the captioner.

Triggers (the admin's buttons, the API, `manage.py retrain`, the periodic check) all end in
`training_enqueue`, which refuses at once what could only fail later (too few corrections, no model
to start from) and queues at most one job per project and kind: two triggers at once get one job.

A training job runs on the `gpu` queue. It writes its model into a hidden sibling folder
(`.name.partial`), evaluates the candidate and the active model on the same held-out data, and only
then renames the folder into place and registers a candidate ModelVersion, in one transaction with its
promotion when the gate lets it through (`model_version_activate`, which also re-scores the captions
nobody has corrected). Whatever happens before that, a failure, a cancel or a killed worker, leaves
the active models as they were and registers nothing. Training stops on its own before the Celery
soft time limit, so the model trained so far still goes through the gate.

Model code (torch) is imported inside the worker-side functions only: web processes never load it.
"""

from __future__ import annotations

import logging
import math
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.db import IntegrityError, transaction
from django.db.models import Max
from django.utils import timezone

from annotator.models import Correction, Image, Job, ModelVersion, Project
from annotator.selectors.jobs import training_job_in_flight, training_job_last
from annotator.selectors.model_versions import (
    ModelNotActive,
    model_folder,
    model_version_active,
    model_version_active_or_none,
)
from annotator.services.detection import image_pixels
from annotator.services.jobs import (
    JobCancelled,
    JobControl,
    job_create,
    job_enqueue_on_commit,
    job_running,
    job_training_deadline,
    jobs_lost_fail,
)
from annotator.services.model_versions import model_version_activate, model_version_register

if TYPE_CHECKING:
    from reward.retrain import CorrectionSample, GateVerdict

logger = logging.getLogger(__name__)

REWARD, POLICY = "reward", "policy"
JOB_KINDS = {REWARD: Job.Kind.REWARD_TRAIN, POLICY: Job.Kind.POLICY_TRAIN}
POLICY_METHODS = ("ppo_tokens", "ppo_sentence", "ppo_verifier", "sft")
# Methods whose rewards come from TLDR: they need an active reward model.
TLDR_REWARDED_METHODS = ("ppo_tokens", "ppo_sentence")
# A captioner is judged on a held-out slice of the project's images: a few, and some left to train on.
POLICY_MIN_IMAGES = 5


class TrainingRefused(ValueError):
    """A training job that could only fail, refused before it is queued; the message says what is missing."""


class ModelFolderMissing(FileNotFoundError):
    """A registered model whose folder is gone; the message names both."""


@dataclass(frozen=True)
class TrainingOptions:
    """What a trigger may choose. Unset budgets take TLDR_REWARD_TRAIN_MINUTES / TLDR_POLICY_TRAIN_MINUTES."""

    minutes: float | None = None
    max_steps: int | None = None
    seed: int = 0
    from_base: bool = False  # reward: a fresh LoRA and head on the captioner instead of the active model
    method: str = "ppo_tokens"  # policy: one of POLICY_METHODS

    @classmethod
    def from_payload(cls, payload: dict) -> TrainingOptions:
        return cls(**{name: payload[name] for name in cls.__dataclass_fields__ if name in payload})


@dataclass(frozen=True)
class TrainingStart:
    """The job a trigger got, whether it made it, and what to tell the person."""

    job: Job
    created: bool
    message: str


# ----------------------------------------------------------------------------- triggers


def training_enqueue(
    *,
    project: Project,
    kind: str,
    options: TrainingOptions,
    created_by: AbstractBaseUser | None = None,
    send: bool = True,
) -> TrainingStart:
    """Queue a training job of `kind` (reward|policy) for the project, or hand back the one in flight.

    The project's row lock makes simultaneous triggers take turns, and a partial unique index on
    (project, kind) of queued and running training jobs makes "one at a time" a database fact where
    locks are not enough. Raises `TrainingRefused` when the job could not succeed. `send=False`
    leaves the job off the broker for a caller that runs it itself (`manage.py retrain --in-process`).
    """
    if kind not in JOB_KINDS:
        raise TrainingRefused(f"unknown training kind {kind!r}; use {REWARD} or {POLICY}")
    _training_check(project=project, kind=kind, options=options)
    job_kind = JOB_KINDS[kind]
    with transaction.atomic():
        Project.objects.select_for_update().filter(pk=project.pk).first()
        jobs_lost_fail(now=timezone.now())
        if (existing := training_job_in_flight(project=project, kind=job_kind)) is not None:
            return _training_existing(existing)
        last_correction = Correction.objects.filter(project=project).aggregate(last=Max("pk"))["last"]
        payload = {**asdict(options), "last_correction_id": last_correction or 0}
        try:
            with transaction.atomic():
                job = job_create(kind=job_kind, payload=payload, created_by=created_by, project=project)
        except IntegrityError:
            # Another trigger's job got in between (possible where the row lock is not a real lock).
            return _training_existing(training_job_in_flight(project=project, kind=job_kind))
        if send:
            job_enqueue_on_commit(job=job, send=_training_task(kind).delay)
    label = "retraining TLDR on corrections" if kind == REWARD else f"training the captioner ({options.method})"
    return TrainingStart(job=job, created=True, message=f"Queued job #{job.pk}: {label} for “{project.name}”.")


def _training_existing(job: Job) -> TrainingStart:
    message = f"Job #{job.pk} ({job.get_kind_display()}) is already {job.status} for this project: following that one."
    return TrainingStart(job=job, created=False, message=message)


def _training_task(kind: str):
    from annotator.tasks import policy_train_task, reward_retrain_task

    return reward_retrain_task if kind == REWARD else policy_train_task


def _training_check(*, project: Project, kind: str, options: TrainingOptions) -> None:
    corrections = Correction.objects.filter(project=project).count()
    needed = settings.TLDR_TRAIN_MIN_CORRECTIONS
    too_few = (
        f"project “{project.name}” has {corrections} correction{'' if corrections == 1 else 's'}; "
        f"{{what}} needs at least {needed} (TLDR_TRAIN_MIN_CORRECTIONS): correct more captions first"
    )
    if options.minutes is not None and options.minutes <= 0:
        raise TrainingRefused(f"minutes must be above 0, not {options.minutes}")
    if options.max_steps is not None and options.max_steps < 1:
        raise TrainingRefused(f"max_steps must be at least 1, not {options.max_steps}")
    try:
        if kind == REWARD:
            if corrections < needed:
                raise TrainingRefused(too_few.format(what="retraining TLDR"))
            model_version_active(kind=ModelVersion.Kind.POLICY if options.from_base else ModelVersion.Kind.REWARD)
            return
        if options.method not in POLICY_METHODS:
            raise TrainingRefused(f"unknown training method {options.method!r}; use one of {', '.join(POLICY_METHODS)}")
        model_version_active(kind=ModelVersion.Kind.POLICY)
        if options.method in TLDR_REWARDED_METHODS:
            model_version_active(kind=ModelVersion.Kind.REWARD)
    except ModelNotActive as error:
        raise TrainingRefused(str(error)) from None
    if options.method == "ppo_verifier" and verifier_folder() is None:
        raise TrainingRefused(
            "method ppo_verifier needs a trained vision-encoder verifier: set TLDR_VERIFIER_DIR to its folder"
        )
    if options.method == "sft" and corrections < needed:
        raise TrainingRefused(too_few.format(what="training the captioner on corrections (sft)"))
    images = project.images.count()
    if images < POLICY_MIN_IMAGES:
        raise TrainingRefused(
            f"project “{project.name}” has {images} image{'' if images == 1 else 's'}; training the captioner "
            f"needs at least {POLICY_MIN_IMAGES} (some are held out to judge the new captioner)"
        )


def reward_retrain_due_enqueue(*, now: datetime) -> list[Job]:
    """The periodic check: retrain TLDR for every project with TLDR_RETRAIN_MIN_CORRECTIONS new corrections.

    "New" is counted from the newest correction its last reward retraining saw (whatever became of
    that job), so a job that failed is not retried every period; an admin starts it again by hand.
    Also ends training jobs whose worker was lost past their hard time limit.
    """
    jobs_lost_fail(now=now)
    wanted = settings.TLDR_RETRAIN_MIN_CORRECTIONS
    queued = []
    for project in Project.objects.order_by("pk"):
        last = training_job_last(project=project, kind=Job.Kind.REWARD_TRAIN)
        seen = last.payload.get("last_correction_id", 0) if last else 0
        if Correction.objects.filter(project=project, pk__gt=seen).count() < wanted:
            continue
        try:
            start = training_enqueue(project=project, kind=REWARD, options=TrainingOptions())
        except TrainingRefused as refused:
            logger.warning("project %s is due for TLDR retraining but it cannot start: %s", project.pk, refused)
            continue
        if start.created:
            queued.append(start.job)
    return queued


# ----------------------------------------------------------------------------- the reward model's job


def reward_retrain_job_run(*, job: Job, time_limit_s: float | None) -> None:
    """Run a claimed reward_train job: train, evaluate, gate, register; the job records how it ended."""
    with job_running(job=job, deadline=job_training_deadline(time_limit_s=time_limit_s)) as control:
        reward_retrain(job=job, control=control)


def reward_retrain(*, job: Job, control: JobControl) -> ModelVersion:
    """Retrain TLDR on the project's corrections; register the candidate, active if it passes the gate.

    The job trains on the corrections that existed when it was queued, so a rerun is the same run.
    """
    from reward.model import MANIFEST
    from reward.retrain import RetrainConfig, reward_gate
    from reward.retrain import reward_retrain as retrain

    options = TrainingOptions.from_payload(job.payload)
    active = model_version_active_or_none(kind=ModelVersion.Kind.REWARD)
    if active is None and not options.from_base:
        raise ModelNotActive("no active reward model to continue from: activate one, or retrain with from_base")
    active_dir = model_folder_check(model_version=active) if active is not None else None
    base_model = None
    if options.from_base or active is None:
        base_model = settings.TLDR_BACKBONE or str(model_folder_check(model_version=_captioner_active()))
    samples = correction_samples(project=job.project, through_id=job.payload.get("last_correction_id"))
    minutes = options.minutes if options.minutes or options.max_steps else settings.TLDR_REWARD_TRAIN_MINUTES
    config = RetrainConfig(
        minutes=minutes,
        max_steps=options.max_steps,
        epochs=settings.TLDR_REWARD_TRAIN_EPOCHS,
        from_base=options.from_base,
        seed=options.seed,
    )
    name = f"tldr-p{job.project_id}-j{job.pk}"
    with model_folder_building(name=name) as partial:
        result = retrain(
            samples=samples,
            out_dir=partial,
            config=config,
            active_dir=active_dir,
            base_model=base_model,
            backbone=settings.TLDR_BACKBONE or None,
            on_progress=control,
            should_stop=control.should_stop,
        )
        verdict = reward_gate(candidate=result.candidate, active=result.active)
        stopped = " (stopped early: cancelled or out of time)" if result.training.get("stopped_early") else ""
        control.note(f"trained {result.training.get('steps')} steps{stopped}; {verdict.reason}")
        metrics = json_safe(
            {
                "mAP_neg": result.candidate.get("mAP_neg"),
                "A_R": result.candidate.get("A_R"),
                "threshold": result.threshold,
                "calibrated_on": result.calibrated_on,
                "held_out": result.candidate,
                "active_held_out": result.active,
                "split": result.split,
                "training": result.training,
                "from_base": options.from_base,
            }
        )
        return model_candidate_register(
            job=job,
            control=control,
            kind=ModelVersion.Kind.REWARD,
            name=name,
            partial=partial,
            complete_marker=MANIFEST,
            metrics=metrics,
            verdict=verdict,
            compared_with=active,
        )


def correction_samples(*, project: Project, through_id: int | None) -> list[CorrectionSample]:
    """The project's latest TLDR_REWARD_TRAIN_CORRECTIONS corrections (up to `through_id`) as training
    data, oldest first, each image read once.

    Training holds their images decoded in memory, so a job reads a bounded window, the newest: they
    judge the captioner as it is now, and a retraining continues from a model that learnt the older
    ones. Which corrections are held out stays a matter of each one's hash (`corrections_split`).
    """
    from reward.retrain import CorrectionSample
    from shapeworld.scene import scene_from_dict

    corrections = Correction.objects.filter(project=project).select_related("task__caption__image")
    if through_id:
        corrections = corrections.filter(pk__lte=through_id)
    size = settings.TLDR_REWARD_TRAIN_CORRECTIONS
    if oldest := corrections.order_by("-pk").values_list("pk", flat=True)[size - 1 : size].first():
        corrections = corrections.filter(pk__gte=oldest)
    pixels: dict[int, object] = {}
    scenes: dict[int, object] = {}
    samples = []
    for correction in corrections.only(
        "pk", "original_text", "corrected_text", "task__caption__image__file", "task__caption__image__scene"
    ).order_by("pk"):
        image: Image = correction.task.caption.image
        if image.pk not in pixels:
            pixels[image.pk] = image_pixels(image)
            scenes[image.pk] = scene_from_dict(image.scene) if image.scene else None
        samples.append(
            CorrectionSample(
                key=correction.pk,
                image=pixels[image.pk],
                original=correction.original_text,
                corrected=correction.corrected_text,
                scene=scenes[image.pk],
            )
        )
    return samples


def verifier_folder() -> Path | None:
    """The verifier of method ppo_verifier (TLDR_VERIFIER_DIR), or None when unset or missing."""
    if not settings.TLDR_VERIFIER_DIR:
        return None
    folder = model_folder(settings.TLDR_VERIFIER_DIR)
    return folder if folder.is_dir() else None


def _captioner_active() -> ModelVersion:
    return model_version_active(kind=ModelVersion.Kind.POLICY)


# ----------------------------------------------------------------------------- shared by both training jobs


@contextmanager
def model_folder_building(*, name: str) -> Iterator[Path]:
    """A hidden sibling folder of `TLDR_MODELS_DIR/name` to write a model into; removed on the way out
    unless `model_candidate_register` renamed it into place.

    A folder left by a worker that was killed is cleared first, as is a complete folder of the same
    name that no ModelVersion points to (its job died between the rename and the commit).
    """
    final = Path(settings.TLDR_MODELS_DIR) / name
    partial = final.with_name(f".{name}.partial")
    final.parent.mkdir(parents=True, exist_ok=True)
    shutil.rmtree(partial, ignore_errors=True)
    if final.exists() and not ModelVersion.objects.filter(path=name).exists():
        shutil.rmtree(final, ignore_errors=True)
    try:
        yield partial
    finally:
        shutil.rmtree(partial, ignore_errors=True)


def model_folder_check(*, model_version: ModelVersion) -> Path:
    """The active model's folder, or an error naming it: a job fails before training, not after."""
    folder = model_folder(model_version.path)
    if not folder.is_dir():
        raise ModelFolderMissing(
            f"the folder of the active {model_version.kind} model {model_version.name} is missing ({folder}); "
            "nothing was trained and the active models are unchanged. Restore the folder or activate another version."
        )
    return folder


def model_candidate_register(
    *,
    job: Job,
    control: JobControl,
    kind: str,
    name: str,
    partial: Path,
    complete_marker: str,
    metrics: dict,
    verdict: GateVerdict,
    compared_with: ModelVersion | None,
) -> ModelVersion:
    """Rename the finished folder into place and register it; activate it when the gate says so.

    All in one transaction under the job's row lock: a cancel that came in during evaluation still
    wins, and a promotion never happens without its registration. The gate compared the candidate with
    the model active when the job started; if another became active since, the candidate stays one.
    """
    final = partial.with_name(name)
    if not (partial / complete_marker).is_file():
        raise FileNotFoundError(
            f"the trained model at {partial} is incomplete (no {complete_marker}); nothing registered"
        )
    promote, reason = verdict.promote, verdict.reason
    try:
        with transaction.atomic():
            locked = Job.objects.select_for_update().get(pk=job.pk)
            if locked.cancel_requested:
                raise JobCancelled(f"job {job.pk} was cancelled before its model was registered")
            now_active = (
                ModelVersion.objects.select_for_update()
                .filter(kind=kind, status=ModelVersion.Status.ACTIVE)
                .values_list("pk", flat=True)
                .first()
            )
            if promote and now_active != (compared_with.pk if compared_with is not None else None):
                promote, reason = (
                    False,
                    f"{reason}; but the active model changed while this job ran: kept as a candidate",
                )
            gate = {"promoted": promote, "reason": reason, "judged_by": verdict.judged_by}
            gate["compared_with"] = compared_with.name if compared_with is not None else None
            partial.rename(final)
            version = model_version_register(
                kind=kind, name=name, path=name, metrics={**metrics, "gate": gate, "job_id": job.pk}
            )
            if promote:
                model_version_activate(model_version=version)
            Job.objects.filter(pk=job.pk).update(
                metrics={**metrics, "gate": gate, "model_version": name, "model_version_id": version.pk}
            )
    except BaseException:
        if final.exists() and not ModelVersion.objects.filter(kind=kind, name=name).exists():
            shutil.rmtree(final, ignore_errors=True)
        raise
    control.note(f"registered {name} as {'the active model' if promote else 'a candidate'}")
    return version


def json_safe(value: object) -> object:
    """NaN and infinities (an undefined mAP) become null: PostgreSQL's JSON has no NaN."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {str(key): json_safe(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [json_safe(item) for item in value]
    return value
