"""Detection, captioning, re-scoring and the demo seed with a micro captioner and an untrained TLDR model
(the `models_dir` and `active_models` fixtures of conftest.py)."""

from __future__ import annotations

import io
import json
import random
import shutil

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management import call_command

from annotator.models import Assignment, Caption, Detection, Image, Job, ModelVersion, Task
from annotator.services.captioning import captions_generate_for_images
from annotator.services.demo import DEMO_PROJECT, default_models_register
from annotator.services.detection import CaptionsUnscorable, captions_detect, captions_unfinished_ids
from annotator.services.imports import images_import
from annotator.services.model_versions import model_version_activate, model_version_register
from reward.bootstrap import CAPTIONER, REWARD_MODEL
from reward.model import MANIFEST
from shapeworld.render import scene_render
from shapeworld.scene import scene_from_dict, scene_sample
from tests.annotator.factories import CaptionFactory, TaskFactory

pytestmark = pytest.mark.django_db


def _scene_images(project, n: int) -> list[int]:
    import random

    rng, uploads = random.Random(1), []
    for index in range(n):
        buffer = io.BytesIO()
        scene_render(scene_sample(rng)).save(buffer, format="PNG")
        uploads.append(SimpleUploadedFile(f"s{index}.png", buffer.getvalue()))
    return images_import(project=project, files=uploads).created


def test_detection_scores_every_word_and_opens_the_task(active_models, project):
    image_id = _scene_images(project, 1)[0]
    task = TaskFactory(
        project=project,
        status=Task.Status.PENDING,
        caption__image_id=image_id,
        caption__text="two red circles left of a blue square",
    )
    assert captions_detect(caption_ids=[task.caption_id]) == 1
    detection = Detection.objects.get()
    assert [word["text"] for word in detection.words] == ["two", "red", "circles", "left", "of", "a", "blue", "square"]
    assert all(0.0 <= word["p_bad"] <= 1.0 for word in detection.words)
    assert detection.caption_p_bad == max(word["p_bad"] for word in detection.words)
    task.refresh_from_db()
    assert task.status == Task.Status.READY


def test_captioning_writes_scored_captions_with_ready_tasks(active_models, project):
    image_ids = _scene_images(project, 3)
    caption_ids = captions_generate_for_images(image_ids=image_ids)
    assert len(caption_ids) == 3
    assert set(Caption.objects.values_list("source", "model_version")) == {("policy", CAPTIONER)}
    assert Detection.objects.filter(is_current=True).count() == 3
    assert Task.objects.filter(status=Task.Status.READY).count() == 3


def test_a_new_reward_model_rescores_only_captions_nobody_corrected(
    active_models, project, annotator, now, django_capture_on_commit_callbacks
):
    image_ids = _scene_images(project, 2)
    open_task = TaskFactory(project=project, caption__image_id=image_ids[0])
    corrected = TaskFactory(project=project, caption__image_id=image_ids[1])
    captions_detect(caption_ids=[open_task.caption_id, corrected.caption_id])
    Assignment.objects.create(
        task=corrected,
        annotator=annotator,
        arm="tokens",
        status="submitted",
        leased_at=now,
        expires_at=now,
        served_at=now,
    )
    new_version = model_version_register(kind=ModelVersion.Kind.REWARD, name="tldr-v1", path=REWARD_MODEL)
    with django_capture_on_commit_callbacks():
        model_version_activate(model_version=new_version)
    assert Job.objects.get(kind=Job.Kind.RESCORE).status == Job.Status.QUEUED
    assert captions_unfinished_ids() == [open_task.caption_id]
    captions_detect(caption_ids=captions_unfinished_ids())
    current = dict(Detection.objects.filter(is_current=True).values_list("caption_id", "reward_model_version__name"))
    assert current == {open_task.caption_id: "tldr-v1", corrected.caption_id: REWARD_MODEL}
    assert ModelVersion.objects.get(name=REWARD_MODEL).status == ModelVersion.Status.RETIRED


def test_seed_demo_builds_a_project_and_prints_logins(models_dir, settings, capsys):
    settings.TLDR_MODELS_DIR = str(models_dir)
    call_command("seed_demo", images=2)
    out = capsys.readouterr().out
    assert "2 tasks ready" in out and "login  annotator / " in out and "login  admin / " in out
    # Each image keeps the scene it was rendered from: the exact ground truth of its captions.
    stored = [scene_from_dict(image.scene) for image in Image.objects.filter(project__name=DEMO_PROJECT)]
    rng = random.Random(0)
    assert stored == [scene_sample(rng), scene_sample(rng)]


def test_a_rebuilt_default_reward_model_rescores_what_nobody_corrected(
    models_dir, project, django_capture_on_commit_callbacks
):
    # This test's own copy of the reward model: its manifest changes as a rebuild would change it.
    reward_dir = models_dir / REWARD_MODEL
    shared = reward_dir.resolve()
    reward_dir.unlink()
    shutil.copytree(shared, reward_dir)
    default_models_register(models_dir=models_dir)
    TaskFactory(project=project)
    with django_capture_on_commit_callbacks():
        default_models_register(models_dir=models_dir)
    assert not Job.objects.filter(kind=Job.Kind.RESCORE).exists()
    manifest = json.loads((reward_dir / MANIFEST).read_text())
    manifest["metrics"] = {"training": {"final_loss": 0.01, "threshold": 0.5}}
    (reward_dir / MANIFEST).write_text(json.dumps(manifest))
    with django_capture_on_commit_callbacks():
        default_models_register(models_dir=models_dir)
    assert Job.objects.filter(kind=Job.Kind.RESCORE).count() == 1
    assert ModelVersion.objects.get(name=REWARD_MODEL).metrics == manifest["metrics"]


def test_seed_demo_without_models_says_how_to_build_them(tmp_path, settings):
    from django.core.management.base import CommandError

    settings.TLDR_MODELS_DIR = str(tmp_path)
    with pytest.raises(CommandError, match=r"python -m reward --models-dir \S+ bootstrap"):
        call_command("seed_demo", images=1)


def test_import_images_command_reads_a_folder(project, tmp_path, capsys):
    from tests.annotator.factories import png_bytes

    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "a.png").write_bytes(png_bytes())
    (tmp_path / "b.png").write_bytes(b"not an image")
    call_command("import_images", project.name, str(tmp_path))
    captured = capsys.readouterr()
    assert "1 imported" in captured.out and "b.png" in captured.err
    assert CaptionFactory._meta.model.objects.count() == 0


def test_a_caption_too_long_for_the_model_is_named_and_the_others_are_scored(active_models, project):
    image_ids = _scene_images(project, 2)
    fits = TaskFactory(project=project, status=Task.Status.PENDING, caption__image_id=image_ids[0])
    too_long = TaskFactory(
        project=project,
        status=Task.Status.PENDING,
        caption__image_id=image_ids[1],
        caption__text="a red circle is left of a blue square . " * 40,
    )
    with pytest.raises(CaptionsUnscorable, match=rf"1 of 2 captions .* caption {too_long.caption_id} needs \d+ tokens"):
        captions_detect(caption_ids=[fits.caption_id, too_long.caption_id])
    assert list(Detection.objects.values_list("caption_id", flat=True)) == [fits.caption_id]
    fits.refresh_from_db()
    too_long.refresh_from_db()
    assert (fits.status, too_long.status) == (Task.Status.READY, Task.Status.PENDING)
