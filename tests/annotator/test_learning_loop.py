"""The learning loop: corrections retrain TLDR, TLDR trains the captioner, and neither replaces an active
model unless it does at least as well on held-out data. Micro models (seconds of training) throughout."""

from __future__ import annotations

import shutil
import sys
import threading
import types
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import IntegrityError, connection, connections
from django.utils import timezone

from annotator.models import Correction, Job, ModelVersion, Project
from annotator.services import jobs as jobs_service
from annotator.services.jobs import JobNotCancellable, job_cancel, job_claim, jobs_lost_fail
from annotator.services.policy_training import policy_train_job_run
from annotator.services.retraining import (
    TrainingOptions,
    TrainingRefused,
    correction_samples,
    reward_retrain_due_enqueue,
    reward_retrain_job_run,
    training_enqueue,
)
from annotator.tasks import captions_detect_task, reward_retrain_task
from reward.bootstrap import CAPTIONER, REWARD_MODEL
from reward.retrain import reward_gate
from tests.annotator.factories import ModelVersionFactory, ProjectFactory, TaskFactory, corrections_plant
from training.evaluate import policy_gate

pytestmark = pytest.mark.django_db

MICRO = TrainingOptions(max_steps=2)


# ----------------------------------------------------------------------------- fixtures


@pytest.fixture(autouse=True)
def _loop_settings(settings) -> None:
    settings.TLDR_TRAIN_MIN_CORRECTIONS = 8
    settings.TLDR_RETRAIN_MIN_CORRECTIONS = 5


def evaluations_forced(monkeypatch, *maps: float) -> None:
    """TLDR's held-out evaluation reports these mAP(neg) in turn: the active model's, then the candidate's."""
    import reward.evaluate

    answers = iter(maps)
    real = reward.evaluate.reward_evaluate

    def forced(*args, **kwargs):
        report = real(*args, **kwargs)
        report["overall"]["mAP_neg"] = next(answers)
        return report

    monkeypatch.setattr(reward.evaluate, "reward_evaluate", forced)


def run_claimed(job: Job, *, time_limit_s: float | None = None) -> Job:
    reward_retrain_job_run(job=job_claim(job_id=job.pk), time_limit_s=time_limit_s)
    job.refresh_from_db()
    return job


def folders(models_dir: Path) -> set[str]:
    return {path.name for path in models_dir.iterdir()}


# ----------------------------------------------------------------------------- retraining TLDR


def test_retraining_registers_a_candidate_with_its_held_out_metrics(active_models, models_dir, project, annotator):
    corrections_plant(project, annotator, 12)
    job = training_enqueue(project=project, kind="reward", options=MICRO).job
    run_claimed(job)
    assert job.status == Job.Status.SUCCEEDED, job.message
    version = ModelVersion.objects.get(name=f"tldr-p{project.pk}-j{job.pk}")
    assert version.kind == ModelVersion.Kind.REWARD
    held_out = version.metrics["held_out"]
    assert 0.0 <= version.metrics["mAP_neg"] <= 1.0 and version.metrics["mAP_neg"] == held_out["mAP_neg"]
    assert held_out["responses"] == version.metrics["split"]["held_out"] >= 3
    assert sum(version.metrics["split"].values()) == 12
    assert version.metrics["active_held_out"]["responses"] == held_out["responses"]  # the same captions judged
    assert 0.0 <= version.metrics["threshold"] <= 1.0
    assert job.metrics["gate"]["compared_with"] == REWARD_MODEL and job.metrics["model_version"] == version.name
    assert job.metrics["gate"]["promoted"] == (version.status == ModelVersion.Status.ACTIVE)
    assert (models_dir / version.name / "reward_model.json").is_file()
    assert folders(models_dir) == {CAPTIONER, REWARD_MODEL, version.name}  # no partial folder left behind
    assert "registered" in job.log


def test_a_better_candidate_becomes_active_and_rescores_open_captions(
    active_models, project, annotator, monkeypatch, django_capture_on_commit_callbacks
):
    corrections_plant(project, annotator, 10)
    TaskFactory(project=project)  # a caption nobody corrected yet: the new model must score it again
    evaluations_forced(monkeypatch, 0.40, 0.55)
    job = training_enqueue(project=project, kind="reward", options=MICRO).job
    with django_capture_on_commit_callbacks() as sent:
        run_claimed(job)
    version = ModelVersion.objects.get(name=f"tldr-p{project.pk}-j{job.pk}")
    assert version.status == ModelVersion.Status.ACTIVE
    assert ModelVersion.objects.get(name=REWARD_MODEL).status == ModelVersion.Status.RETIRED
    assert job.metrics["gate"]["promoted"] is True and "0.5500 ≥" in job.metrics["gate"]["reason"]
    rescore = Job.objects.get(kind=Job.Kind.RESCORE)
    assert rescore.payload == {"model_version_id": version.pk} and len(sent) == 1


def test_a_worse_candidate_stays_a_candidate_and_the_job_says_why(active_models, project, annotator, monkeypatch):
    corrections_plant(project, annotator, 10)
    evaluations_forced(monkeypatch, 0.60, 0.20)
    job = run_claimed(training_enqueue(project=project, kind="reward", options=MICRO).job)
    assert job.status == Job.Status.SUCCEEDED
    version = ModelVersion.objects.get(name=job.metrics["model_version"])
    assert version.status == ModelVersion.Status.CANDIDATE
    assert ModelVersion.objects.get(status=ModelVersion.Status.ACTIVE, kind="reward").name == REWARD_MODEL
    assert job.metrics["gate"] == {
        "promoted": False,
        "reason": "held-out mAP(neg) 0.2000 < the active model's 0.6000: kept as a candidate",
        "judged_by": "mAP_neg",
        "compared_with": REWARD_MODEL,
    }
    assert not Job.objects.filter(kind=Job.Kind.RESCORE).exists()


def test_retraining_from_the_captioner_builds_a_fresh_model_on_it(active_models, project, annotator, micro_models):
    import json

    corrections_plant(project, annotator, 9, scenes=False)  # free-text captions: lexicon negatives
    job = run_claimed(
        training_enqueue(project=project, kind="reward", options=TrainingOptions(max_steps=2, from_base=True)).job
    )
    assert job.status == Job.Status.SUCCEEDED, job.message
    manifest = json.loads((_folder(job) / "reward_model.json").read_text())
    assert Path(manifest["base_model"]).resolve() == (micro_models / CAPTIONER).resolve()
    assert job.metrics["from_base"] is True


def _folder(job: Job) -> Path:
    from django.conf import settings

    return Path(settings.TLDR_MODELS_DIR) / job.metrics["model_version"]


def test_training_stops_before_the_time_limit_and_the_model_still_goes_through_the_gate(
    active_models, project, annotator, settings
):
    corrections_plant(project, annotator, 9)
    settings.TLDR_TRAIN_EVAL_SECONDS = 1
    settings.TLDR_REWARD_TRAIN_EPOCHS = 10_000  # the time limit, not the passes, must end this one
    job = training_enqueue(project=project, kind="reward", options=TrainingOptions(minutes=2.0)).job
    started = timezone.now()
    run_claimed(job, time_limit_s=2)  # a two-minute budget, a two-second limit: training stops after one
    assert job.status == Job.Status.SUCCEEDED, job.message
    assert job.metrics["training"]["stopped_early"] is True
    assert (timezone.now() - started) < timedelta(seconds=60)
    assert ModelVersion.objects.filter(name=job.metrics["model_version"]).exists()
    assert "stopped early" in job.log


def test_a_vanished_model_folder_fails_the_job_clearly_and_leaves_the_active_model(
    active_models, models_dir, project, annotator
):
    corrections_plant(project, annotator, 9)
    (models_dir / REWARD_MODEL).unlink()
    job = training_enqueue(project=project, kind="reward", options=MICRO).job
    with pytest.raises(FileNotFoundError):
        run_claimed(job)
    job.refresh_from_db()
    assert job.status == Job.Status.FAILED
    assert f"the folder of the active reward model {REWARD_MODEL} is missing" in job.message
    assert "active models are unchanged" in job.message
    assert list(ModelVersion.objects.values_list("name", "status").order_by("name")) == [
        (CAPTIONER, "active"),
        (REWARD_MODEL, "active"),
    ]
    assert folders(models_dir) == {CAPTIONER}


def test_a_failure_in_training_leaves_no_folder_and_no_version(
    active_models, models_dir, project, annotator, monkeypatch
):
    import reward.train

    def broken(*args, **kwargs):
        raise RuntimeError("CUDA error: an illegal memory access was encountered")

    corrections_plant(project, annotator, 9)
    monkeypatch.setattr(reward.train, "batch_loss", broken)
    job = training_enqueue(project=project, kind="reward", options=MICRO).job
    with pytest.raises(RuntimeError):
        run_claimed(job)
    job.refresh_from_db()
    assert job.status == Job.Status.FAILED and "illegal memory access" in job.message
    assert ModelVersion.objects.count() == 2 and folders(models_dir) == {CAPTIONER, REWARD_MODEL}


# ----------------------------------------------------------------------------- triggers


def test_a_retraining_reads_the_newest_corrections_up_to_its_window(project, annotator, settings):
    planted = sorted(c.pk for c in corrections_plant(project, annotator, 6))
    settings.TLDR_REWARD_TRAIN_CORRECTIONS = 4
    assert [s.key for s in correction_samples(project=project, through_id=None)] == planted[2:]
    assert [s.key for s in correction_samples(project=project, through_id=planted[4])] == planted[1:5]
    settings.TLDR_REWARD_TRAIN_CORRECTIONS = 10
    assert [s.key for s in correction_samples(project=project, through_id=None)] == planted


def test_too_few_corrections_is_refused_with_the_numbers_and_nothing_is_queued(
    active_models, project, annotator, api, admin_user
):
    corrections_plant(project, annotator, 3)
    with pytest.raises(TrainingRefused, match=r"has 3 corrections; retraining TLDR needs at least 8"):
        training_enqueue(project=project, kind="reward", options=MICRO)
    api.force_authenticate(admin_user)
    response = api.post(f"/api/projects/{project.pk}/retrain/", {"kind": "reward"}, format="json")
    assert response.status_code == 400 and "TLDR_TRAIN_MIN_CORRECTIONS" in response.json()["detail"]
    assert not Job.objects.exists()


def test_training_without_a_model_to_start_from_is_refused(project, annotator):
    corrections_plant(project, annotator, 8)
    with pytest.raises(TrainingRefused, match="no active reward model"):
        training_enqueue(project=project, kind="reward", options=MICRO)
    with pytest.raises(TrainingRefused, match="no active policy model"):
        training_enqueue(project=project, kind="policy", options=TrainingOptions(method="sft"))
    assert not Job.objects.exists()


def test_a_second_trigger_gets_the_job_in_flight_and_a_message(
    active_models, project, annotator, django_capture_on_commit_callbacks, monkeypatch
):
    sent: list[int] = []
    monkeypatch.setattr(reward_retrain_task, "delay", sent.append)
    corrections_plant(project, annotator, 8)
    with django_capture_on_commit_callbacks(execute=True):
        first = training_enqueue(project=project, kind="reward", options=MICRO)
        second = training_enqueue(project=project, kind="reward", options=TrainingOptions(minutes=3))
    assert first.created and not second.created and second.job.pk == first.job.pk
    assert second.message.startswith(f"Job #{first.job.pk} (retrain TLDR on corrections) is already queued")
    assert sent == [first.job.pk]
    assert first.job.payload["last_correction_id"] == Correction.objects.latest("pk").pk
    # Another kind, or the same kind once the first has ended, is a new job.
    job_cancel(job=first.job)
    assert training_enqueue(project=project, kind="reward", options=MICRO).created


def test_one_queued_training_job_per_project_and_kind_is_a_database_fact(project):
    Job.objects.create(kind=Job.Kind.REWARD_TRAIN, project=project)
    Job.objects.create(kind=Job.Kind.POLICY_TRAIN, project=project)
    Job.objects.create(kind=Job.Kind.REWARD_TRAIN, project=ProjectFactory())
    Job.objects.create(kind=Job.Kind.EXPORT, project=project)
    Job.objects.create(kind=Job.Kind.EXPORT, project=project)
    with pytest.raises(IntegrityError):
        Job.objects.create(kind=Job.Kind.REWARD_TRAIN, project=project, status=Job.Status.RUNNING)


@pytest.mark.django_db(transaction=True)
def test_two_triggers_at_once_make_one_job(models_dir, monkeypatch, settings):
    if connection.vendor != "postgresql":
        pytest.skip("row locks under concurrency need PostgreSQL: set DATABASE_URL=postgres://…")
    from tests.annotator.factories import AnnotatorFactory

    for kind, name in ((ModelVersion.Kind.POLICY, CAPTIONER), (ModelVersion.Kind.REWARD, REWARD_MODEL)):
        ModelVersionFactory(kind=kind, name=name, status=ModelVersion.Status.ACTIVE)
    settings.TLDR_TRAIN_MIN_CORRECTIONS = 1
    sent: list[int] = []
    monkeypatch.setattr(reward_retrain_task, "delay", sent.append)
    annotator = AnnotatorFactory()
    project = ProjectFactory(members=[annotator])
    corrections_plant(project, annotator, 1)
    start = threading.Barrier(8)

    def trigger(_):
        start.wait()
        try:
            return training_enqueue(project=project, kind="reward", options=MICRO)
        finally:
            connections.close_all()

    with ThreadPoolExecutor(8) as pool:
        starts = list(pool.map(trigger, range(8)))
    assert len({s.job.pk for s in starts}) == 1
    assert sum(s.created for s in starts) == 1
    assert Job.objects.filter(kind=Job.Kind.REWARD_TRAIN).count() == 1 and len(sent) == 1


def test_the_periodic_check_enqueues_exactly_when_k_new_corrections_arrived(
    active_models, project, annotator, django_capture_on_commit_callbacks, monkeypatch
):
    sent: list[int] = []
    monkeypatch.setattr(reward_retrain_task, "delay", sent.append)
    corrections_plant(project, annotator, 4, seed=1)
    with django_capture_on_commit_callbacks(execute=True):
        assert reward_retrain_due_enqueue(now=timezone.now()) == []  # 4 < K = 5
    corrections_plant(project, annotator, 4, seed=2)  # 8 in all: K is reached (and the floor of 8)
    with django_capture_on_commit_callbacks(execute=True):
        [job] = reward_retrain_due_enqueue(now=timezone.now())
    assert (job.kind, job.project, job.created_by, job.status) == (Job.Kind.REWARD_TRAIN, project, None, "queued")
    assert sent == [job.pk]
    job_cancel(job=job)
    # The next check counts from the corrections that job saw: none new yet, then four, then five.
    for batch, expected in ((0, 0), (4, 0), (1, 1)):
        corrections_plant(project, annotator, batch, seed=10 + batch)
        assert len(reward_retrain_due_enqueue(now=timezone.now())) == expected


def test_the_periodic_check_is_scheduled_for_beat_and_runs_on_the_default_queue(settings):
    from django_celery_beat.models import PeriodicTask
    from django_celery_beat.schedulers import DatabaseScheduler

    from config.celery import app

    entry = app.conf.beat_schedule["learning-loop-check"]
    assert entry["task"] == "annotator.tasks.learning_loop_check_task" and entry["options"] == {"queue": "default"}
    assert entry["schedule"] == settings.TLDR_RETRAIN_CHECK_SECONDS
    assert "annotator.tasks.learning_loop_check_task" not in app.conf.task_routes
    # What DatabaseScheduler.setup_schedule does with every beat_schedule entry when beat starts.
    DatabaseScheduler.Entry.from_entry("learning-loop-check", app=app, **entry)
    task = PeriodicTask.objects.get(name="learning-loop-check")
    assert task.task == entry["task"] and task.interval.every == settings.TLDR_RETRAIN_CHECK_SECONDS


def test_training_jobs_run_on_the_gpu_queue_with_time_limits(settings):
    from annotator.tasks import policy_train_task
    from config.celery import app

    for task in (reward_retrain_task, policy_train_task):
        assert app.conf.task_routes[task.name] == {"queue": "gpu"}
        assert (task.soft_time_limit, task.time_limit) == (
            settings.TLDR_TRAIN_TIME_LIMIT,
            settings.TLDR_TRAIN_HARD_TIME_LIMIT,
        )
    visibility = settings.CELERY_BROKER_TRANSPORT_OPTIONS.get("visibility_timeout")
    assert visibility is None or visibility > settings.TLDR_TRAIN_HARD_TIME_LIMIT


# ----------------------------------------------------------------------------- cancel and lost workers


def test_a_queued_job_cancelled_ends_at_once_and_its_task_does_nothing(project):
    job = Job.objects.create(kind=Job.Kind.DETECT, payload={"caption_ids": [1]})
    job_cancel(job=job)
    job.refresh_from_db()
    assert (job.status, job.message) == (Job.Status.CANCELLED, "cancelled before it started")
    captions_detect_task(job.pk)  # would fail without an active reward model, if it ran
    job.refresh_from_db()
    assert job.status == Job.Status.CANCELLED and job.started is None
    with pytest.raises(JobNotCancellable, match=rf"job #{job.pk} has already cancelled"):
        job_cancel(job=job)


def test_a_running_training_job_cancelled_stops_and_registers_nothing(
    active_models, models_dir, project, annotator, monkeypatch
):
    import reward.retrain

    corrections_plant(project, annotator, 9)
    monkeypatch.setattr(jobs_service, "CANCEL_CHECK_SECONDS", 0.0)
    job = training_enqueue(project=project, kind="reward", options=TrainingOptions(minutes=0.5)).job
    batches = reward.retrain.retrain_batches

    def cancelled_after_the_first_batch(*args, **kwargs):
        stream = batches(*args, **kwargs)
        yield next(stream)
        job_cancel(job=job)
        yield from stream

    monkeypatch.setattr(reward.retrain, "retrain_batches", cancelled_after_the_first_batch)
    started = timezone.now()
    run_claimed(job)
    assert job.status == Job.Status.CANCELLED, job.message
    assert (timezone.now() - started) < timedelta(seconds=25)  # not the whole half minute of training
    assert "nothing it would have registered or activated was" in job.message
    assert ModelVersion.objects.count() == 2 and folders(models_dir) == {CAPTIONER, REWARD_MODEL}
    assert ModelVersion.objects.get(kind="reward", status="active").name == REWARD_MODEL


def test_a_cancel_during_evaluation_still_registers_nothing(active_models, models_dir, project, annotator, monkeypatch):
    import reward.evaluate

    corrections_plant(project, annotator, 9)
    job = training_enqueue(project=project, kind="reward", options=MICRO).job
    real = reward.evaluate.reward_evaluate
    calls: list[int] = []

    def cancel_while_the_candidate_is_judged(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            Job.objects.filter(pk=job.pk).update(cancel_requested=True)
        return real(*args, **kwargs)

    monkeypatch.setattr(reward.evaluate, "reward_evaluate", cancel_while_the_candidate_is_judged)
    run_claimed(job)
    assert job.status == Job.Status.CANCELLED
    assert ModelVersion.objects.count() == 2 and folders(models_dir) == {CAPTIONER, REWARD_MODEL}


def test_a_job_redelivered_after_its_worker_died_starts_again_once_then_fails_clearly(project):
    job = Job.objects.create(kind=Job.Kind.REWARD_TRAIN, project=project)
    assert job_claim(job_id=job.pk).attempts == 1
    Job.objects.filter(pk=job.pk).update(step="training: step 40 loss 0.3")
    again = job_claim(job_id=job.pk)  # the broker redelivered it: the first worker is gone
    assert again is not None and again.attempts == 2 and "started again (attempt 2)" in again.message
    assert job_claim(job_id=job.pk) is None
    job.refresh_from_db()
    assert job.status == Job.Status.FAILED
    assert "worker was lost (killed, out of memory or restarted) at “training: step 40 loss 0.3”" in job.message
    assert "on each of 2 attempts; nothing was registered" in job.message


def test_jobs_running_past_their_hard_limit_are_failed_and_free_the_slot(project, settings):
    stale = Job.objects.create(
        kind=Job.Kind.REWARD_TRAIN,
        project=project,
        status=Job.Status.RUNNING,
        started=timezone.now() - timedelta(seconds=settings.TLDR_TRAIN_HARD_TIME_LIMIT + 3600),
    )
    fresh = Job.objects.create(kind=Job.Kind.POLICY_TRAIN, project=project, status="running", started=timezone.now())
    assert jobs_lost_fail(now=timezone.now()) == 1
    stale.refresh_from_db()
    fresh.refresh_from_db()
    assert stale.status == Job.Status.FAILED and "hard time limit" in stale.message
    assert fresh.status == Job.Status.RUNNING


def test_progress_records_the_loss_and_a_log_tail(project):
    job = job_claim(job_id=Job.objects.create(kind=Job.Kind.REWARD_TRAIN, project=project).pk)
    control = jobs_service.JobControl(job)
    for step in range(300):
        control.record(step / 300, f"training: step {step} loss {1 / (step + 1):.4f}")
    job.refresh_from_db()
    assert job.loss == pytest.approx(1 / 300, abs=1e-4) and job.step == "training: step 299 loss 0.0033"
    assert job.log.endswith("training: step 299 loss 0.0033") and len(job.log) <= jobs_service.LOG_TAIL
    assert job.log.splitlines()[0].endswith("step 250 loss 0.0040")  # the last 50 lines


# ----------------------------------------------------------------------------- the gates


def test_reward_gate_promotes_at_least_as_good_and_nothing_undefined():
    assert reward_gate(candidate={"mAP_neg": 0.5}, active={"mAP_neg": 0.5}).promote
    assert not reward_gate(candidate={"mAP_neg": 0.49}, active={"mAP_neg": 0.5}).promote
    assert not reward_gate(candidate={"mAP_neg": float("nan")}, active={"mAP_neg": 0.5}).promote
    assert reward_gate(candidate={"mAP_neg": 0.1}, active=None).promote


def _exact(h_t: float, recall: float) -> dict:
    return {"exact": {"H_T": h_t, "object_recall": recall}}


@pytest.mark.parametrize(
    ("candidate", "active", "promote", "judged_by"),
    [
        (_exact(0.10, 0.90), _exact(0.20, 0.92), True, "exact"),
        (_exact(0.20, 0.92), _exact(0.20, 0.92), True, "exact"),
        (_exact(0.21, 0.99), _exact(0.20, 0.92), False, "exact"),
        (_exact(0.05, 0.80), _exact(0.20, 0.90), False, "exact"),
        ({"tldr": {"H_T": 0.10}}, {"tldr": {"H_T": 0.12}}, True, "tldr"),
        ({"tldr": {"H_T": 0.13}}, {"tldr": {"H_T": 0.12}}, False, "tldr"),
        ({"captions": 3}, {"captions": 3}, False, "none"),
    ],
)
def test_policy_gate_wants_no_more_hallucination_and_no_lost_objects(candidate, active, promote, judged_by):
    verdict = policy_gate(candidate=candidate, active=active)
    assert verdict.promote is promote and verdict.judged_by.startswith(judged_by), verdict.reason
    if candidate.get("exact", {}).get("object_recall") == 0.80:
        assert "object recall 0.800 is below 95% of the active captioner's 0.900" in verdict.reason


# ----------------------------------------------------------------------------- training the captioner


@dataclass(frozen=True)
class _CaptionPair:
    image: object
    original: str
    corrected: str


@dataclass
class _PolicyTrainConfig:
    method: str = "ppo_tokens"
    minutes: float | None = 5.0
    max_steps: int | None = None
    seed: int = 0


@pytest.fixture
def stand_in_training(monkeypatch):
    """`training.loop` and `training.evaluate` as their contract says, with rates a test chooses.

    The stand-in "trains" by copying the captioner; its held-out rates are `rates["active"]` for the
    active captioner's folder and `rates["candidate"]` for the new one.
    """
    calls: dict = {"evaluate": []}
    rates = {"active": {}, "candidate": {}}

    def policy_train(*, captioner_dir, out_dir, config, images, corrections, scenes=None, on_progress, **models):
        calls["train"] = {"config": config, "images": images, "corrections": corrections, "scenes": scenes, **models}
        shutil.copytree(captioner_dir, out_dir)
        on_progress(1.0, "step 1 loss 0.25")
        return {"steps": 1, "stopped_early": bool(models["should_stop"]())}

    def policy_evaluate(*, captioner_dir, images, scenes=None, reward_dir=None):
        which = "candidate" if Path(captioner_dir).name.startswith(".captioner") else "active"
        calls["evaluate"].append({"which": which, "images": len(images), "scenes": scenes, "reward_dir": reward_dir})
        return {"captions": len(images), **rates[which]}

    package = types.ModuleType("training")
    package.__path__ = []
    loop = types.ModuleType("training.loop")
    loop.CaptionPair, loop.PolicyTrainConfig, loop.policy_train = _CaptionPair, _PolicyTrainConfig, policy_train
    evaluate = types.ModuleType("training.evaluate")
    evaluate.policy_evaluate, evaluate.policy_gate = policy_evaluate, policy_gate  # the real gate
    for name, module in (("training", package), ("training.loop", loop), ("training.evaluate", evaluate)):
        monkeypatch.setitem(sys.modules, name, module)
    return calls, rates


def run_policy(job: Job) -> Job:
    policy_train_job_run(job=job_claim(job_id=job.pk), time_limit_s=None)
    job.refresh_from_db()
    return job


def test_a_captioner_with_lower_exact_hallucination_is_promoted(
    active_models, models_dir, project, annotator, stand_in_training
):
    calls, rates = stand_in_training
    rates["active"] = {"exact": {"H_T": 0.30, "object_recall": 0.80}, "tldr": {"H_T": 0.2}}
    rates["candidate"] = {"exact": {"H_T": 0.10, "object_recall": 0.79}, "tldr": {"H_T": 0.3}}
    corrections_plant(project, annotator, 10)
    start = training_enqueue(project=project, kind="policy", options=TrainingOptions(method="sft", max_steps=3))
    job = run_policy(start.job)
    assert job.status == Job.Status.SUCCEEDED, job.message
    version = ModelVersion.objects.get(name=f"captioner-p{project.pk}-j{job.pk}")
    assert version.status == ModelVersion.Status.ACTIVE and version.kind == ModelVersion.Kind.POLICY
    assert ModelVersion.objects.get(name=CAPTIONER).status == ModelVersion.Status.RETIRED
    assert job.metrics["gate"]["judged_by"] == "exact_H_T" and version.metrics["H_T"] == 0.10
    assert (models_dir / version.name / "config.json").is_file()
    # Held-out images judge both captioners and never train; their corrections stay out of training too.
    train, evaluated = calls["train"], calls["evaluate"]
    assert [e["which"] for e in evaluated] == ["active", "candidate"]
    assert evaluated[0]["images"] == evaluated[1]["images"] == job.metrics["images"]["held_out"] >= 3
    assert len(train["images"]) + evaluated[0]["images"] == 10
    assert len(train["corrections"]) == len(train["images"]) == len(train["scenes"])
    assert (train["config"].method, train["config"].max_steps) == ("sft", 3)
    assert train["reward_dir"] == models_dir / REWARD_MODEL
    assert job.loss == 0.25


def test_a_job_reads_a_bounded_sample_of_a_large_projects_images(
    active_models, project, annotator, stand_in_training, settings
):
    calls, rates = stand_in_training
    rates["active"], rates["candidate"] = _exact(0.30, 0.80), _exact(0.30, 0.80)
    settings.TLDR_POLICY_TRAIN_IMAGES, settings.TLDR_POLICY_EVAL_IMAGES = 4, 3
    corrections_plant(project, annotator, 16)
    trained, judged = [], []
    for _ in range(2):
        job = run_policy(training_enqueue(project=project, kind="policy", options=TrainingOptions(max_steps=1)).job)
        assert job.status == Job.Status.SUCCEEDED, job.message
        assert job.metrics["images"] == {"train": 4, "held_out": 3}
        trained.append({repr(scene) for scene in calls["train"]["scenes"]})
        judged.append({repr(scene) for scene in calls["evaluate"][-1]["scenes"]})
    assert judged[0] == judged[1]  # the same held-out images judge every job
    assert trained[0] != trained[1]  # each job trains on a sample of its own
    assert not (trained[0] | trained[1]) & judged[0]


def test_a_captioner_that_drops_objects_stays_a_candidate(active_models, project, annotator, stand_in_training):
    _, rates = stand_in_training
    rates["active"] = _exact(0.30, 0.80)
    rates["candidate"] = _exact(0.05, 0.70)
    corrections_plant(project, annotator, 6)
    job = run_policy(training_enqueue(project=project, kind="policy", options=TrainingOptions(max_steps=1)).job)
    version = ModelVersion.objects.get(name=job.metrics["model_version"])
    assert version.status == ModelVersion.Status.CANDIDATE
    assert "object recall 0.700 is below 95% of the active captioner's 0.800" in job.metrics["gate"]["reason"]
    assert ModelVersion.objects.get(kind="policy", status="active").name == CAPTIONER


def test_without_scenes_tldr_judges_the_captioner(active_models, project, annotator, stand_in_training):
    calls, rates = stand_in_training
    rates["active"], rates["candidate"] = {"tldr": {"H_T": 0.2}}, {"tldr": {"H_T": 0.25}}
    corrections_plant(project, annotator, 6, scenes=False)
    job = run_policy(training_enqueue(project=project, kind="policy", options=TrainingOptions(max_steps=1)).job)
    assert calls["train"]["scenes"] is None and calls["evaluate"][0]["scenes"] is None
    assert job.metrics["gate"]["judged_by"] == "tldr_H_T" and not job.metrics["gate"]["promoted"]
    assert ModelVersion.objects.get(kind="policy", status="active").name == CAPTIONER


def test_training_the_captioner_needs_enough_images(active_models, project, annotator):
    corrections_plant(project, annotator, 4)
    with pytest.raises(TrainingRefused, match=r"has 4 images; training the captioner needs at least 5"):
        training_enqueue(project=project, kind="policy", options=TrainingOptions())
    with pytest.raises(TrainingRefused, match="unknown training method 'dpo'"):
        training_enqueue(project=project, kind="policy", options=TrainingOptions(method="dpo"))
    corrections_plant(project, annotator, 2, seed=5)
    with pytest.raises(TrainingRefused, match="needs a trained vision-encoder verifier: set TLDR_VERIFIER_DIR"):
        training_enqueue(project=project, kind="policy", options=TrainingOptions(method="ppo_verifier"))
    assert not Job.objects.exists()


def test_ppo_verifier_is_given_the_configured_verifier(
    active_models, models_dir, project, annotator, stand_in_training, settings
):
    calls, rates = stand_in_training
    rates["active"], rates["candidate"] = {"exact": {"H_T": 0.2}}, {"exact": {"H_T": 0.2}}
    (models_dir / "verifier-v0").mkdir()
    settings.TLDR_VERIFIER_DIR = "verifier-v0"
    corrections_plant(project, annotator, 5)
    options = TrainingOptions(method="ppo_verifier", max_steps=1)
    job = run_policy(training_enqueue(project=project, kind="policy", options=options).job)
    assert job.status == Job.Status.SUCCEEDED and job.metrics["gate"]["promoted"]
    assert calls["train"]["verifier_dir"] == models_dir / "verifier-v0"


def test_the_real_training_package_trains_a_captioner_the_gate_judges(active_models, project, annotator):
    pytest.importorskip("training.loop", reason="training.loop is not in this checkout yet")
    corrections_plant(project, annotator, 8)
    start = training_enqueue(project=project, kind="policy", options=TrainingOptions(method="sft", max_steps=2))
    job = run_policy(start.job)
    assert job.status == Job.Status.SUCCEEDED, job.message
    version = ModelVersion.objects.get(name=job.metrics["model_version"])
    assert "exact" in version.metrics["held_out"] and job.metrics["gate"]["judged_by"] == "exact_H_T"


# ----------------------------------------------------------------------------- the API, pages and command


def test_the_retrain_api_starts_a_job_then_returns_it_and_cancels_it(
    api, admin_user, active_models, project, annotator, monkeypatch, django_capture_on_commit_callbacks
):
    monkeypatch.setattr(reward_retrain_task, "delay", lambda job_id: None)
    corrections_plant(project, annotator, 8)
    api.force_authenticate(admin_user)
    url = f"/api/projects/{project.pk}/retrain/"
    with django_capture_on_commit_callbacks(execute=True):
        first = api.post(url, {"kind": "reward", "max_steps": 5, "from_base": True}, format="json")
    assert first.status_code == 202 and first.json()["created"] is True
    job = first.json()["job"]
    assert (job["kind"], job["status"], job["project"]) == ("reward_train", "queued", project.pk)
    assert job["payload"]["max_steps"] == 5 and job["payload"]["from_base"] is True
    again = api.post(url, {"kind": "reward"}, format="json")
    assert (
        again.status_code == 200
        and again.json()["job"]["id"] == job["id"]
        and "already queued" in again.json()["detail"]
    )
    assert api.post(url, {"kind": "policy", "method": "dpo"}, format="json").status_code == 400
    assert api.get(f"/api/jobs/{job['id']}/cancel/").json() == {
        "id": job["id"],
        "status": "queued",
        "cancel_requested": False,
        "cancellable": True,
    }
    cancelled = api.post(f"/api/jobs/{job['id']}/cancel/")
    assert cancelled.status_code == 200 and cancelled.json()["status"] == "cancelled"
    assert api.post(f"/api/jobs/{job['id']}/cancel/").status_code == 409


def test_cancelling_a_running_job_through_the_api_asks_it_to_stop(api, admin_user, project):
    job = job_claim(job_id=Job.objects.create(kind=Job.Kind.POLICY_TRAIN, project=project).pk)
    api.force_authenticate(admin_user)
    body = api.post(f"/api/jobs/{job.pk}/cancel/").json()
    assert (body["status"], body["cancel_requested"]) == ("running", True)


def _page_requests(project: Project, job: Job) -> list[tuple[str, str, str, dict | None]]:
    return [
        ("jobs page", "get", "/jobs/", None),
        ("models page", "get", "/models/", None),
        ("project page", "get", f"/projects/{project.pk}/", None),
        (
            "start training",
            "post",
            "/training/start/",
            {"project": project.pk, "kind": "reward", "next": f"/projects/{project.pk}/"},
        ),
        ("cancel job", "post", f"/jobs/{job.pk}/cancel/", {}),
    ]


@pytest.mark.parametrize("role", ["anonymous", "annotator", "admin"])
def test_permission_matrix_of_the_learning_loop_pages(
    client, role, annotator, admin_user, active_models, project, monkeypatch
):
    monkeypatch.setattr(reward_retrain_task, "delay", lambda job_id: None)
    corrections_plant(project, annotator, 8)
    queued = Job.objects.create(kind=Job.Kind.EXPORT, payload={"project_id": project.pk})
    if role != "anonymous":
        client.force_login(annotator if role == "annotator" else admin_user)
    for name, method, url, data in _page_requests(project, queued):
        response = client.get(url) if method == "get" else client.post(url, data)
        if role == "anonymous":
            assert (response.status_code, response.url) == (302, f"/accounts/login/?next={url}"), name
        elif role == "annotator":
            assert response.status_code == 403, name
        elif method == "get":
            assert response.status_code == 200, name
        else:
            assert (response.status_code, response.url) == (302, "/jobs/"), name
    queued.refresh_from_db()
    allowed = role == "admin"
    assert Job.objects.filter(kind=Job.Kind.REWARD_TRAIN).count() == (1 if allowed else 0)
    assert queued.status == (Job.Status.CANCELLED if allowed else Job.Status.QUEUED)


def test_the_buttons_are_on_the_project_and_models_pages_and_the_jobs_page_is_in_the_nav(
    client, admin_user, annotator, project
):
    client.force_login(admin_user)
    project_page = client.get(f"/projects/{project.pk}/").content.decode()
    assert 'data-train="reward"' in project_page and 'data-train="policy"' in project_page
    assert 'action="/training/start/"' in project_page
    models_page = client.get("/models/").content.decode()
    assert 'data-train="any"' in models_page and f'<option value="{project.pk}"' in models_page
    assert 'href="/jobs/"' in client.get("/").content.decode()
    client.force_login(annotator)
    assert 'href="/jobs/"' not in client.get("/").content.decode()


def test_a_refused_training_goes_back_to_its_page_with_the_reason(client, admin_user, active_models, project):
    client.force_login(admin_user)
    response = client.post(
        "/training/start/",
        {"project": project.pk, "kind": "reward", "next": f"/projects/{project.pk}/"},
        follow=True,
    )
    assert response.redirect_chain == [(f"/projects/{project.pk}/", 302)]
    [message] = [str(m) for m in response.context["messages"]]
    assert "has 0 corrections; retraining TLDR needs at least 8" in message
    elsewhere = client.post("/training/start/", {"project": project.pk, "kind": "reward", "next": "https://evil.test/"})
    assert elsewhere.url == "/jobs/"


def test_the_jobs_page_shows_progress_loss_log_and_metrics_escaped(client, admin_user):
    project = ProjectFactory(name="<b>bold project</b>")
    job = Job.objects.create(
        kind=Job.Kind.REWARD_TRAIN,
        project=project,
        status=Job.Status.RUNNING,
        progress=0.4,
        step="training: step 40 loss 0.1234",
        loss=0.1234,
        log="12:00:00 <script>alert('log')</script>",
        metrics={"gate": {"reason": "<img src=x onerror=alert(1)>"}},
    )
    client.force_login(admin_user)
    page = client.get("/jobs/").content.decode()
    assert f'data-job-url="/api/jobs/{job.pk}/"' in page and "data-job-active" in page
    assert 'value="0.4"' in page and "0.1234" in page and f'action="/jobs/{job.pk}/cancel/"' in page
    assert "&lt;script&gt;alert(&#x27;log&#x27;)&lt;/script&gt;" in page and "<script>alert" not in page
    assert "&lt;img src=x onerror=alert(1)&gt;" in page and "&lt;b&gt;bold project&lt;/b&gt;" in page


def test_the_jobs_script_fills_training_cells_with_text_only():
    script = (Path(__file__).resolve().parents[2] / "static" / "annotator" / "jobs.js").read_text()
    assert "innerHTML" not in script
    for cell in ("[data-job-loss]", "[data-job-log]", "[data-job-metrics]", "[data-job-gate]", "[data-job-cancel]"):
        assert cell in script


def test_the_retrain_command_queues_a_job_and_refuses_clearly(active_models, project, annotator, monkeypatch, capsys):
    monkeypatch.setattr(reward_retrain_task, "delay", lambda job_id: None)
    with pytest.raises(CommandError, match="has 0 corrections"):
        call_command("retrain", project=str(project.pk), kind="reward")
    corrections_plant(project, annotator, 8)
    call_command("retrain", project=project.name, kind="reward", max_steps=3)
    job = Job.objects.get(kind=Job.Kind.REWARD_TRAIN)
    assert f"Queued job #{job.pk}" in capsys.readouterr().out
    assert (job.status, job.payload["max_steps"]) == (Job.Status.QUEUED, 3)
    with pytest.raises(CommandError, match="no project 'nope'"):
        call_command("retrain", project="nope", kind="reward")


def test_the_retrain_command_runs_a_job_in_process(active_models, project, annotator, capsys):
    corrections_plant(project, annotator, 8)
    call_command("retrain", project=str(project.pk), kind="reward", max_steps=2, in_process=True)
    job = Job.objects.get(kind=Job.Kind.REWARD_TRAIN)
    assert job.status == Job.Status.SUCCEEDED and job.attempts == 1
    assert f"job #{job.pk} succeeded: held-out mAP(neg)" in capsys.readouterr().out


def test_the_retrain_command_waits_for_the_worker_and_fails_with_the_job(
    active_models, project, annotator, monkeypatch
):
    from annotator.management.commands import retrain

    monkeypatch.setattr(reward_retrain_task, "delay", lambda job_id: None)
    corrections_plant(project, annotator, 8)

    def worker_fails_it(seconds: float) -> None:
        Job.objects.filter(kind=Job.Kind.REWARD_TRAIN).update(status=Job.Status.FAILED, message="out of memory")

    monkeypatch.setattr(retrain, "sleep", worker_fails_it)
    with pytest.raises(CommandError, match=r"job #\d+ failed"):
        call_command("retrain", project=str(project.pk), kind="reward", wait=True)
