"""Training the captioner (the policy) on a project's images: the second half of the learning loop.

`training.loop.policy_train` does the training (PPO with TLDR's token-level rewards, its sentence- or
verifier-rewarded variants, or supervised fine-tuning on the corrections); this module hands it the
project's data, judges the result against the active captioner on images it never trained on, and
registers it (see `annotator.services.retraining` for the folder, cancel and promotion rules, which
both training jobs share). A promoted captioner is the one the next "caption these images" job uses.
"""

from __future__ import annotations

from django.conf import settings

from annotator.models import Correction, Job, ModelVersion
from annotator.selectors.model_versions import model_version_active, model_version_active_or_none
from annotator.services.detection import image_pixels
from annotator.services.jobs import JobControl, job_running, job_training_deadline
from annotator.services.retraining import (
    TrainingOptions,
    json_safe,
    model_candidate_register,
    model_folder_building,
    model_folder_check,
    verifier_folder,
)

HELD_OUT_SHARE = 0.2
MIN_HELD_OUT_IMAGES = 3


def policy_train_job_run(*, job: Job, time_limit_s: float | None) -> None:
    """Run a claimed policy_train job: train, evaluate, gate, register; the job records how it ended."""
    with job_running(job=job, deadline=job_training_deadline(time_limit_s=time_limit_s)) as control:
        captioner_train(job=job, control=control)


def captioner_train(*, job: Job, control: JobControl) -> ModelVersion:
    """Train a candidate captioner from the active one; register it, active if it passes `policy_gate`.

    Images are split by a hash of their id: about a fifth (at least three) never train and judge both
    captioners; corrections of those images are left out of training too. The active captioner is
    judged first, so a missing model folder fails the job before any training is spent.

    A job reads at most TLDR_POLICY_EVAL_IMAGES of the held-out images (the same ones every time:
    the first in hash order) and TLDR_POLICY_TRAIN_IMAGES of the others (a sample of its own per
    job, so successive jobs see different images): training holds its images decoded in memory, and
    a project of a hundred thousand photos would not fit, nor would evaluating on a fifth of it end
    in reasonable time.
    """
    from reward.retrain import keys_held_out, slice_position
    from shapeworld.scene import scene_from_dict
    from training.evaluate import policy_evaluate, policy_gate
    from training.loop import CaptionPair, PolicyTrainConfig, policy_train

    options = TrainingOptions.from_payload(job.payload)
    captioner = model_version_active(kind=ModelVersion.Kind.POLICY)
    captioner_dir = model_folder_check(model_version=captioner)
    reward = model_version_active_or_none(kind=ModelVersion.Kind.REWARD)
    reward_dir = model_folder_check(model_version=reward) if reward is not None else None

    image_ids = list(job.project.images.values_list("pk", flat=True))
    judging = keys_held_out(image_ids, share=HELD_OUT_SHARE, minimum=MIN_HELD_OUT_IMAGES, salt="tldr-images")
    held_out_ids = sorted(judging[: settings.TLDR_POLICY_EVAL_IMAGES])
    held_out_all = set(judging)
    others = sorted(
        (pk for pk in image_ids if pk not in held_out_all),
        key=lambda pk: slice_position(pk, salt=f"tldr-policy-job-{job.pk}"),
    )
    training_ids = sorted(others[: settings.TLDR_POLICY_TRAIN_IMAGES])
    images = list(job.project.images.filter(pk__in=[*training_ids, *held_out_ids]))
    pixels = {image.pk: image_pixels(image) for image in images}
    scenes = {image.pk: scene_from_dict(image.scene) if image.scene else None for image in images}
    corrections = Correction.objects.filter(task__caption__image_id__in=training_ids).select_related("task__caption")
    if through := job.payload.get("last_correction_id"):
        corrections = corrections.filter(pk__lte=through)
    pairs = [
        CaptionPair(image=pixels[c.task.caption.image_id], original=c.original_text, corrected=c.corrected_text)
        for c in corrections.order_by("pk")
    ]
    training_scenes = [scenes[pk] for pk in training_ids]
    held_out_scenes = [scenes[pk] for pk in held_out_ids]
    held_out = {
        "images": [pixels[pk] for pk in held_out_ids],
        "scenes": held_out_scenes if any(held_out_scenes) else None,
        "reward_dir": reward_dir,
    }

    control(0.0, f"evaluating the active captioner on {len(held_out_ids)} held-out images")
    active = policy_evaluate(captioner_dir=captioner_dir, **held_out)
    minutes = options.minutes if options.minutes or options.max_steps else settings.TLDR_POLICY_TRAIN_MINUTES
    config = PolicyTrainConfig(method=options.method, minutes=minutes, max_steps=options.max_steps, seed=options.seed)
    name = f"captioner-p{job.project_id}-j{job.pk}"
    with model_folder_building(name=name) as partial:
        training = policy_train(
            captioner_dir=captioner_dir,
            out_dir=partial,
            config=config,
            images=[pixels[pk] for pk in training_ids],
            corrections=pairs,
            reward_dir=reward_dir,
            verifier_dir=verifier_folder() if options.method == "ppo_verifier" else None,
            scenes=training_scenes if any(training_scenes) else None,
            on_progress=lambda fraction, step: control.record(0.1 + 0.7 * fraction, f"training: {step}"),
            should_stop=control.should_stop,
        )
        control(0.8, f"evaluating the new captioner on {len(held_out_ids)} held-out images")
        candidate = policy_evaluate(captioner_dir=partial, **held_out)
        verdict = policy_gate(candidate=candidate, active=active)
        control.note(verdict.reason)
        exact, tldr = candidate.get("exact") or {}, candidate.get("tldr") or {}
        metrics = json_safe(
            {
                "H_T": exact.get("H_T", tldr.get("H_T")),
                "object_recall": exact.get("object_recall"),
                "method": options.method,
                "held_out": candidate,
                "active_held_out": active,
                "training": training,
                "images": {"train": len(training_ids), "held_out": len(held_out_ids)},
                "corrections": len(pairs),
            }
        )
        return model_candidate_register(
            job=job,
            control=control,
            kind=ModelVersion.Kind.POLICY,
            name=name,
            partial=partial,
            complete_marker="config.json",
            metrics=metrics,
            verdict=verdict,
            compared_with=captioner,
        )
