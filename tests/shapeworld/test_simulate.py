import itertools
import random

import pytest

from reward.alignment import word_labels_from_correction
from shapeworld.grammar import VOCABULARY, caption_write
from shapeworld.parser import caption_label
from shapeworld.perturb import CATEGORIES, caption_perturb, caption_perturb_any
from shapeworld.scene import ObjectGroup, Scene, scene_sample
from shapeworld.simulate import caption_correct

SCENE = Scene(
    groups=(
        ObjectGroup("circle", "red", "small", 1, None, ((0.2, 0.5),)),
        ObjectGroup("square", "blue", "large", 2, None, ((0.6, 0.3), (0.6, 0.7))),
        ObjectGroup("hexagon", "green", "large", 1, "K", ((0.85, 0.5),)),
    )
)
FIRST_SENTENCE = "a small red circle is left of two large blue squares ."
THREE_RED_CIRCLES = Scene(
    groups=(ObjectGroup("circle", "red", "small", 3, None, ((0.2, 0.2), (0.5, 0.5), (0.8, 0.8))),)
)
BROKEN_CAPTIONS = [
    "",
    "   ",
    ".",
    "circle circle red the of left",
    "there is a big red circle .",
    "There is a small red circle .",
    "A small red circle is left of two large blue squares .",
    "purple stars everywhere !",
    "a small red circle is left of",
    "left of left of above below .",
    "the letter Q is red .",
    "K K K .",
    "there is no no circle .",
    "two two two squares are above above the circle .",
    "a small red circle is left of two large blue squares . the large blue squares are left of a large green",
    "there is a red red blue circle .",
    "the circle has no letter . the hexagon has no letter .",
    "a star is left of a cross .",
    "red , blue , green .",
    "1 2 3 .",
    "a small red circle , a large blue square and a large green hexagon with the letter K .",
    "the image shows nothing .",
]


def _is_true(scene: Scene, caption: str) -> bool:
    return all(w.label in ("true", "neutral") for w in caption_label(scene, caption))


def _bad_words(original: str, corrected: str) -> list[str]:
    """What the annotator's correction marks bad, as the app turns it into labels."""
    return [w["text"] for w in word_labels_from_correction(original, corrected).words if w["label"] == "bad"]


def _bad_starts(original: str, corrected: str) -> set[int]:
    return {w["start"] for w in word_labels_from_correction(original, corrected).words if w["label"] == "bad"}


def test_a_true_caption_comes_back_unchanged():
    for seed in range(200):
        scene = scene_sample(random.Random(seed))
        for rng in (None, random.Random(seed)):
            caption = caption_write(scene, rng)
            assert caption_correct(scene, caption) == caption


def test_every_perturbed_caption_is_corrected_to_a_true_one():
    for seed in range(300):
        rng = random.Random(seed)
        scene = scene_sample(rng)
        perturbation = caption_perturb_any(scene, caption_write(scene, rng), rng, n_changes=1 + seed % 2)
        if perturbation is None:
            continue
        corrected = caption_correct(scene, perturbation.caption)
        assert _is_true(scene, corrected), (perturbation.caption, corrected)
        assert corrected.strip()


@pytest.mark.parametrize("caption", BROKEN_CAPTIONS)
def test_broken_captions_are_corrected_to_true_ones(caption):
    corrected = caption_correct(SCENE, caption)
    assert _is_true(SCENE, corrected), corrected
    assert corrected.strip()


def test_word_salad_never_leaves_a_false_or_empty_caption():
    words = [*VOCABULARY, "big", "dog", "Red", "There"]
    for seed in range(200):
        rng = random.Random(seed)
        scene = scene_sample(rng)
        caption = " ".join(rng.choice(words) for _ in range(rng.randrange(1, 25)))
        corrected = caption_correct(scene, caption)
        assert _is_true(scene, corrected) and corrected.strip(), (caption, corrected)


@pytest.mark.parametrize(
    ("scene", "caption", "expected"),
    [
        (THREE_RED_CIRCLES, "there are two red circles.", "there are three red circles."),
        (THREE_RED_CIRCLES, "there is a red circle .", "there are three red circles ."),
        (SCENE, "there are three large blue squares .", "there are two large blue squares ."),
        (SCENE, "there is a large purple circle .", "there is a small red circle ."),
        (SCENE, "a small red circle is right of two large blue squares .", FIRST_SENTENCE),
        (SCENE, "a small red circle is above two large blue squares .", FIRST_SENTENCE),
        (SCENE, "a small red star is left of two large blue squares .", FIRST_SENTENCE),
        (SCENE, "a small red circle with the letter T is left of two large blue squares .", FIRST_SENTENCE),
        (SCENE, "a large green hexagon with the letter T .", "a large green hexagon with the letter K ."),
        (SCENE, "the small blue circle is left of the squares .", "the small red circle is left of the squares ."),
        (SCENE, "the small star is left of the squares .", "the small circle is left of the squares ."),
        (SCENE, "there is no red circle .", "there is a red circle ."),
        (SCENE, "there are no blue squares .", "there are two blue squares ."),
        (SCENE, "the large green hexagon has no letter .", "the large green hexagon has the letter K ."),
        (SCENE, "There is a small red circle .", "there is a small red circle ."),
    ],
)
def test_the_correction_is_the_smallest_true_edit(scene, caption, expected):
    assert caption_correct(scene, caption) == expected


def test_spacing_and_true_sentences_around_a_fix_are_kept():
    caption = "  the image shows a small red circle.  there is a purple star .\nthere are three large blue squares . "
    assert caption_correct(SCENE, caption) == (
        "  the image shows a small red circle.\nthere are two large blue squares . "
    )


def test_an_object_that_is_not_there_loses_its_sentence():
    assert caption_correct(SCENE, "there is a small red circle . there is a purple star .") == (
        "there is a small red circle ."
    )


def test_a_caption_with_nothing_true_left_gets_a_true_sentence():
    assert caption_correct(SCENE, "there is a purple star .") == FIRST_SENTENCE


@pytest.mark.parametrize("category", ["visual_attribute", "spatial_relationship", "small_object"])
def test_single_word_errors_are_fixed_touching_no_more_words_than_the_error(category):
    """The fix is the smallest: the wrong word (with its "of" for a relation on the other axis), or as few
    others ("the small circle is left of b" may become "the small triangle is left of b")."""
    fixed = 0
    for seed in range(150):
        scene = scene_sample(random.Random(seed))
        caption = caption_write(scene, random.Random(seed))
        perturbation = caption_perturb(scene, caption, category, random.Random(seed))
        if perturbation is None:
            continue
        corrected = caption_correct(scene, perturbation.caption)
        words = perturbation.words
        hallucinated = {w.start for w in words if w.label == "hallucinated"}
        its_of = {b.start for a, b in itertools.pairwise(words) if a.start in hallucinated and b.text == "of"}
        touched = _bad_starts(perturbation.caption, corrected)
        assert len(touched) <= len(hallucinated | its_of)
        if category != "spatial_relationship":
            assert touched <= hallucinated
        assert all(w.label != "hallucinated" for w in caption_label(scene, corrected))
        fixed += corrected == caption
    assert fixed > 50


def test_every_category_mostly_keeps_the_true_words():
    for category in CATEGORIES:
        kept = total = 0
        for seed in range(60):
            scene = scene_sample(random.Random(seed))
            perturbation = caption_perturb(scene, caption_write(scene), category, random.Random(seed))
            if perturbation is None:
                continue
            corrected = caption_correct(scene, perturbation.caption)
            true_words = [w.text for w in perturbation.words if w.label == "true"]
            bad = _bad_words(perturbation.caption, corrected)
            total += len(true_words)
            kept += len(true_words) - sum(w in bad for w in true_words)
        assert kept / total > 0.9, category
