"""factory_boy factories of the annotator's rows; images are real (tiny) PNGs through the storage API."""

from __future__ import annotations

import hashlib
import io
import random
import uuid
from datetime import datetime

import factory
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.core.files.base import ContentFile
from django.utils import timezone
from PIL import Image as PilImage

from annotator.models import (
    Arm,
    Assignment,
    Caption,
    Correction,
    Detection,
    Image,
    ModelVersion,
    Project,
    Task,
    caption_words,
)
from annotator.selectors.projects import ANNOTATOR_GROUP
from reward.alignment import word_labels_from_correction
from shapeworld.grammar import caption_write
from shapeworld.perturb import caption_perturb_any
from shapeworld.render import scene_render
from shapeworld.scene import scene_sample, scene_to_dict


def png_bytes(size: tuple[int, int] = (16, 12), colour: tuple[int, int, int] = (200, 30, 30)) -> bytes:
    buffer = io.BytesIO()
    PilImage.new("RGB", size, colour).save(buffer, format="PNG")
    return buffer.getvalue()


class UserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = get_user_model()
        skip_postgeneration_save = True

    username = factory.Sequence(lambda n: f"person{n}")

    @factory.post_generation
    def password(self, create: bool, extracted: str | None, **kwargs: object) -> None:
        """Hashed and saved, so a session made by `force_login` stays valid on the next request."""
        self.set_password(extracted or "pw-for-tests")
        if create:
            self.save(update_fields=["password"])


class AnnotatorFactory(UserFactory):
    @factory.post_generation
    def annotator_group(self, create: bool, extracted: object, **kwargs: object) -> None:
        if create:
            self.groups.add(Group.objects.get_or_create(name=ANNOTATOR_GROUP)[0])


class AdminFactory(UserFactory):
    is_staff = True
    is_superuser = True


class ProjectFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Project
        skip_postgeneration_save = True

    name = factory.Sequence(lambda n: f"project {n}")

    @factory.post_generation
    def members(self, create: bool, extracted: list | None, **kwargs: object) -> None:
        if create and extracted:
            self.annotators.add(*extracted)


class ImageFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Image

    project = factory.SubFactory(ProjectFactory)
    original_name = factory.Sequence(lambda n: f"scene{n}.png")
    width, height = 16, 12
    file = factory.LazyAttributeSequence(
        lambda image, n: ContentFile(png_bytes(colour=(n % 256, (7 * n) % 256, 90)), name=image.original_name)
    )
    sha256 = factory.Sequence(lambda n: hashlib.sha256(f"image {n}".encode()).hexdigest())


class CaptionFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Caption

    image = factory.SubFactory(ImageFactory)
    text = "two red circles left of a blue square"
    source = Caption.Source.IMPORT


class TaskFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Task

    caption = factory.SubFactory(CaptionFactory, image__project=factory.SelfAttribute("...project"))
    project = factory.SubFactory(ProjectFactory)
    status = Task.Status.READY


class ModelVersionFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = ModelVersion

    kind = ModelVersion.Kind.REWARD
    name = factory.Sequence(lambda n: f"tldr-{n}")
    path = factory.LazyAttribute(lambda version: version.name)


class DetectionFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Detection

    caption = factory.SubFactory(CaptionFactory)
    reward_model_version = factory.SubFactory(ModelVersionFactory)
    words = factory.LazyAttribute(
        lambda detection: [
            {"text": word, "start": start, "end": start + len(word), "p_bad": 0.9 if word == "red" else 0.1}
            for word, start in _words(detection.caption.text)
        ]
    )
    caption_p_bad = factory.LazyAttribute(lambda detection: max(word["p_bad"] for word in detection.words))


def _words(text: str) -> list[tuple[str, int]]:
    words, position = [], 0
    for word in text.split():
        position = text.index(word, position)
        words.append((word, position))
        position += len(word)
    return words


def corrections_plant(project: Project, annotator, n: int, *, scenes: bool = True, seed: int = 0) -> list[Correction]:
    """`n` shapeworld images, each with a captioner-like caption with one wrong word and its correction."""
    rng = random.Random(seed)
    now = timezone.now()
    planted = []
    for index in range(n):
        scene = scene_sample(rng)
        buffer = io.BytesIO()
        scene_render(scene).save(buffer, format="PNG")
        image = ImageFactory(
            project=project,
            file=ContentFile(buffer.getvalue(), name=f"loop{seed}-{index}.png"),
            scene=scene_to_dict(scene) if scenes else None,
        )
        corrected = caption_write(scene)
        wrong = caption_perturb_any(scene, corrected, rng)
        original = wrong.caption if wrong else f"{corrected} and a purple star"
        task = TaskFactory(project=project, caption__image=image, caption__text=original, status=Task.Status.DONE)
        assignment = Assignment.objects.create(
            task=task,
            annotator=annotator,
            arm="tokens",
            status=Assignment.Status.SUBMITTED,
            leased_at=now,
            expires_at=now,
            served_at=now,
        )
        labels = word_labels_from_correction(original, corrected)
        planted.append(
            Correction.objects.create(
                task=task,
                assignment=assignment,
                annotator=annotator,
                original_text=original,
                corrected_text=corrected,
                word_labels=labels.words,
                insertions=labels.insertions,
                arm="tokens",
                served_at=now,
                submitted_at=now,
                active_seconds=5.0,
                client_submission_id=assignment.client_submission_id,
            )
        )
    return planted


def corrections_bulk(project: Project, annotator, n: int, *, at: datetime) -> None:
    """`n` corrections ("k red circles" → "k blue circles", one word changed), bulk-created: thousands in a second."""
    from annotator.services.captions import captions_create

    image = TaskFactory(project=project).caption.image
    texts = [f"{k} red circles" for k in range(n)]
    captions = captions_create(captions=[(image, text) for text in texts], source="import")
    tasks = Task.objects.filter(caption__in=captions).order_by("id")
    assignments = Assignment.objects.bulk_create(
        Assignment(
            task=task,
            annotator=annotator,
            arm=Arm.TOKENS,
            status=Assignment.Status.SUBMITTED,
            leased_at=at,
            expires_at=at,
            served_at=at,
        )
        for task in tasks.iterator()
    )
    Correction.objects.bulk_create(
        Correction(
            task_id=assignment.task_id,
            project=project,
            assignment=assignment,
            annotator=annotator,
            original_text=text,
            original_words=caption_words(text),
            corrected_text=text.replace("red", "blue"),
            word_labels=word_labels_from_correction(text, text.replace("red", "blue")).words,
            arm=Arm.TOKENS,
            served_at=at,
            submitted_at=at,
            active_seconds=1.0,
            client_submission_id=uuid.uuid4(),
        )
        for text, assignment in zip(texts, assignments, strict=True)
    )
