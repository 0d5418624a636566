"""Training and evaluation data for TLDR: captions with exact word labels, from every source we have.

Every source ends in the same value, a `LabelledCaption`: an image, a caption and the character spans
of its bad words. Token labels are derived from those spans later, through the tokenizer's offsets, so
the same data trains any backbone.

Sources:
- shapeworld scenes: true captions (every phrasing) and their synthetic hard negatives in the eight
  TLDR categories, labelled exactly by the parser; optionally the true caption on the image of a
  slightly different scene (image-side negatives) or of the scene reflected (its relation words
  wrong), where only the image says which words are wrong;
- the captioner's own sampled captions labelled by the parser (on-policy data: a head trained on
  single swaps alone learns to flag one word per caption and misses a real captioner's errors);
- free-text captions of a user's own images: lexicon perturbations (objects, colours, numbers,
  spatial words, sizes) with exact word labels;
- corrections: (original, corrected) pairs, labelled by a word alignment of the two texts;
- word-labelled JSONL files (what `python -m reward labels` writes, or an export of the app).
"""

from __future__ import annotations

import dataclasses
import json
import random
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from PIL import Image

from reward.alignment import word_labels_from_correction
from reward.images import image_open
from reward.lexicon import Perturber, caption_perturb_lexicon
from shapeworld.dataset import dataset_read
from shapeworld.grammar import caption_write
from shapeworld.parser import WordLabel, caption_label
from shapeworld.perturb import CATEGORIES, caption_perturb
from shapeworld.render import scene_render
from shapeworld.scene import (
    COLOURS,
    LETTER_SHAPES,
    SHAPES,
    Scene,
    WorldConfig,
    scene_from_dict,
    scene_reflected,
    scene_sample,
)

BAD_LABELS = ("hallucinated", "unparsed")


@dataclass(frozen=True)
class LabelledCaption:
    """A caption of an image with the spans of its bad words; `category` names where it came from."""

    image: Image.Image
    caption: str
    bad_spans: tuple[tuple[int, int], ...]
    category: str

    @property
    def is_good(self) -> bool:
        return not self.bad_spans


def bad_spans_from_words(words: list[WordLabel]) -> tuple[tuple[int, int], ...]:
    """Parser labels to bad spans: an unparsed content word is never called true."""
    return tuple((w.start, w.end) for w in words if w.label in BAD_LABELS)


def scene_examples(
    scene: Scene, image: Image.Image, rng: random.Random, *, negatives: int = 1, max_changes: int = 2
) -> list[LabelledCaption]:
    """A true caption of the scene (a random phrasing) and `negatives` hard negatives of it.

    Each negative takes a random applicable category and one or two changes: the paper asks for "1 or 2
    very small changes", and several errors per caption is what a weak captioner really produces.
    """
    caption = caption_write(scene, rng if rng.random() < 0.5 else None)
    examples = [LabelledCaption(image, caption, bad_spans_from_words(caption_label(scene, caption)), "true")]
    categories = list(CATEGORIES)
    rng.shuffle(categories)
    for category in categories:
        if len(examples) > negatives:
            break
        n_changes = 2 if max_changes > 1 and rng.random() < 0.35 else 1
        perturbed = caption_perturb(scene, caption, category, rng, n_changes=n_changes)
        if perturbed is None:
            continue
        spans = bad_spans_from_words(perturbed.words)
        if spans:
            examples.append(LabelledCaption(image, perturbed.caption, spans, category))
    return examples


def scene_altered(scene: Scene, rng: random.Random) -> Scene:
    """The scene with one group's colour or shape changed, the objects where they were.

    The kinds of a scene's groups stay distinct, and a lettered object keeps a shape that bears letters.
    """
    index = rng.randrange(len(scene.groups))
    group = scene.groups[index]
    taken = {(g.shape, g.colour, g.size) for g in scene.groups}
    shapes = LETTER_SHAPES if group.letter is not None else SHAPES
    options = [dataclasses.replace(group, colour=c) for c in COLOURS if c != group.colour]
    options += [dataclasses.replace(group, shape=s) for s in shapes if s != group.shape]
    options = [g for g in options if (g.shape, g.colour, g.size) not in taken]
    groups = list(scene.groups)
    groups[index] = rng.choice(options)
    return Scene(groups=tuple(groups))


def image_side_negative(scene: Scene, caption: str, rng: random.Random, size: int) -> LabelledCaption:
    """A true caption of `scene` on the image of an altered copy of it, labelled against the copy.

    Text-side negatives change words, and a model can learn which changes look unusual without
    looking at the image; here the text is a true caption, seen elsewhere with no bad word, and only
    the image says that its colour or shape word is now wrong.
    """
    altered = scene_altered(scene, rng)
    image = scene_render(altered, size)
    return LabelledCaption(image, caption, bad_spans_from_words(caption_label(altered, caption)), "image_side")


def reflected_negative(scene: Scene, caption: str, rng: random.Random, size: int) -> LabelledCaption | None:
    """A true caption of `scene` on the image of the scene reflected, so that its relation words are wrong.

    Relations are what TLDR on the built-in backbone finds worst, in perturbations and in the
    captioner's own captions. A changed relation word can be half-judged from the sentence alone;
    here the words are the very ones that were right, and only where the objects now stand says
    otherwise. The line (`scene_reflected`) is drawn at random among those that make a word of the
    caption wrong; None for a caption that states no relation.
    """
    lines: list[Literal["vertical", "horizontal", "diagonal"]] = ["vertical", "horizontal", "diagonal"]
    rng.shuffle(lines)
    for line in lines:
        reflected = scene_reflected(scene, line)
        spans = bad_spans_from_words(caption_label(reflected, caption))
        if spans:
            return LabelledCaption(scene_render(reflected, size), caption, spans, "reflected")
    return None


def shapeworld_stream(
    rng: random.Random,
    world: WorldConfig,
    *,
    negatives: int = 1,
    image_side_share: float = 0.0,
    reflection_share: float = 0.0,
) -> Iterator[tuple[Scene, Image.Image, list[LabelledCaption]]]:
    """An endless stream of fresh scenes, each with its true caption and hard negatives.

    `image_side_share` of the scenes also give an image-side negative of their true caption, and
    `reflection_share` of them a reflected one (`reflected_negative`) where the caption states a relation.
    """
    while True:
        scene = scene_sample(rng, world)
        image = scene_render(scene, world.image_size)
        examples = scene_examples(scene, image, rng, negatives=negatives)
        if rng.random() < image_side_share:
            examples.append(image_side_negative(scene, examples[0].caption, rng, world.image_size))
        if rng.random() < reflection_share:
            reflected = reflected_negative(scene, examples[0].caption, rng, world.image_size)
            if reflected is not None:
                examples.append(reflected)
        yield scene, image, examples


def own_caption_examples(scenes: list[Scene], images: list[Image.Image], captions: list[str]) -> list[LabelledCaption]:
    """The captioner's own captions, labelled exactly against their scenes (category "own")."""
    return [
        LabelledCaption(image, caption, bad_spans_from_words(caption_label(scene, caption)), "own")
        for scene, image, caption in zip(scenes, images, captions, strict=True)
    ]


def free_text_examples(
    image: Image.Image, caption: str, rng: random.Random, *, perturber: Perturber = caption_perturb_lexicon
) -> list[LabelledCaption]:
    """A user's own caption (taken as true) and a lexicon hard negative of it, where one can be made.

    Without a scene there is no parser: the caption is trusted, and the negative's labels are exact
    because the perturber made the change itself. `perturber` may be any plugged-in text perturber.
    """
    examples = [LabelledCaption(image, caption, (), "true")]
    perturbed = perturber(caption, rng)
    if perturbed is not None:
        spans = tuple((int(w["start"]), int(w["end"])) for w in perturbed.words if w["label"] == "bad")
        examples.append(LabelledCaption(image, perturbed.caption, spans, perturbed.category))
    return examples


def captions_jsonl_read(path: Path, rng: random.Random) -> tuple[list[LabelledCaption], list[JsonlProblem]]:
    """Free-text captions {"image": path, "caption": text} with lexicon hard negatives; bad lines reported."""
    examples: list[LabelledCaption] = []
    problems: list[JsonlProblem] = []
    with open(path, encoding="utf-8") as lines:
        for number, line in enumerate(lines, start=1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
                caption = record["caption"]
                if not isinstance(caption, str) or not caption.strip():
                    raise ValueError("empty caption")
                examples += free_text_examples(image_open(path.parent / record["image"]), caption, rng)
            except (ValueError, KeyError, TypeError, OSError) as error:
                problems.append(JsonlProblem(number, _reason(error)))
    return examples, problems


def correction_example(image: Image.Image, original: str, corrected: str) -> LabelledCaption:
    """An annotator's correction as training data: replaced or deleted words of the original are bad."""
    labels = word_labels_from_correction(original, corrected)
    spans = tuple((w["start"], w["end"]) for w in labels.words if w["label"] == "bad")
    return LabelledCaption(image, original, spans, "correction")


@dataclass(frozen=True)
class JsonlProblem:
    """A line of a JSONL file that could not be used, with the reason; the other lines still are."""

    line: int
    reason: str

    def __str__(self) -> str:
        return f"line {self.line}: {self.reason}"


def labelled_jsonl_read(
    path: Path, *, on_problem: Callable[[JsonlProblem], None] | None = None
) -> tuple[list[LabelledCaption], list[JsonlProblem]]:
    """Read word-labelled captions: {"image": path, "caption": str, "words": [{start, end, label}], ...}.

    "original" stands for "caption" in what `python -m reward labels` writes.

    Image paths are relative to the file. A malformed line is reported with its number and skipped, so
    one bad record never costs the rest of a file.
    """
    examples: list[LabelledCaption] = []
    problems: list[JsonlProblem] = []
    with open(path, encoding="utf-8") as lines:
        for number, line in enumerate(lines, start=1):
            if not line.strip():
                continue
            try:
                examples.append(_labelled_record_parse(json.loads(line), path.parent))
            except (ValueError, KeyError, TypeError, OSError) as error:
                problem = JsonlProblem(number, _reason(error))
                problems.append(problem)
                if on_problem is not None:
                    on_problem(problem)
    return examples, problems


# Word labels a file may carry: the app's and `labels`' good/bad, or the shapeworld parser's own.
GOOD_WORD_LABELS = ("good", "true", "neutral")
BAD_WORD_LABELS = ("bad", *BAD_LABELS)


def _labelled_record_parse(record: dict, root: Path) -> LabelledCaption:
    caption = record.get("caption", record.get("original"))
    if caption is None:
        raise ValueError("missing field 'caption'")
    if not isinstance(caption, str) or not caption.strip():
        raise ValueError("empty caption")
    spans = []
    for word in record["words"]:
        start, end, label = int(word["start"]), int(word["end"]), word["label"]
        if label not in GOOD_WORD_LABELS + BAD_WORD_LABELS:
            raise ValueError(f"word label {label!r} is not one of {', '.join(GOOD_WORD_LABELS + BAD_WORD_LABELS)}")
        if not 0 <= start < end <= len(caption):
            raise ValueError(f"word span {start}:{end} lies outside the caption ({len(caption)} characters)")
        if label in BAD_WORD_LABELS:
            spans.append((start, end))
    image = image_open(root / record["image"])
    return LabelledCaption(image, caption, tuple(spans), record.get("category", "labelled"))


def shapeworld_dir_read(directory: Path) -> list[LabelledCaption]:
    """A folder written by `python -m shapeworld generate`: every caption and all its perturbations.

    Labels are recomputed by the parser from the stored scene, so a folder made by an older version
    is judged by today's rules.
    """
    examples = []
    for record in dataset_read(directory):
        scene = scene_from_dict(record["scene"])
        image = image_open(directory / record["image"])
        captions = [(record["caption"], "true")] + [(p["caption"], p["category"]) for p in record["perturbations"]]
        for caption, category in captions:
            spans = bad_spans_from_words(caption_label(scene, caption))
            examples.append(LabelledCaption(image, caption, spans, category))
    return examples


def examples_read(path: Path, rng: random.Random) -> tuple[list[LabelledCaption], list[JsonlProblem]]:
    """Whatever `--data` names: a shapeworld folder, a word-labelled JSONL, or free-text captions.

    A JSONL file whose first record has "words" is word-labelled; otherwise its captions are free text
    and get lexicon hard negatives.
    """
    if path.is_dir():
        return shapeworld_dir_read(path), []
    with open(path, encoding="utf-8") as lines:
        first = next((line for line in lines if line.strip()), "{}")
    try:
        labelled = "words" in json.loads(first)
    except json.JSONDecodeError:
        labelled = True  # the labelled reader reports the broken line with its number
    return labelled_jsonl_read(path) if labelled else captions_jsonl_read(path, rng)


def _reason(error: Exception) -> str:
    if isinstance(error, json.JSONDecodeError):
        return f"not valid JSON ({error.msg})"
    if isinstance(error, KeyError):
        return f"missing field {error.args[0]!r}"
    return str(error)
