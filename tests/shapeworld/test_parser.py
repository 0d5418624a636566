import random

import pytest

from shapeworld.grammar import VOCABULARY, caption_words, caption_write
from shapeworld.parser import LABELS, caption_label, object_recall, word_kind
from shapeworld.scene import ObjectGroup, Scene, scene_sample

SCENE = Scene(
    groups=(
        ObjectGroup("circle", "red", "small", 1, None, ((0.2, 0.5),)),
        ObjectGroup("square", "blue", "large", 2, None, ((0.6, 0.3), (0.6, 0.7))),
        ObjectGroup("hexagon", "green", "large", 1, "K", ((0.85, 0.5),)),
    )
)
CAPTION = (
    "a small red circle is left of two large blue squares . "
    "the large blue squares are left of a large green hexagon with the letter K ."
)


def _labels(caption: str, scene: Scene = SCENE) -> dict[str, str]:
    """word -> label, for captions whose words of interest occur once."""
    return {w.text: w.label for w in caption_label(scene, caption)}


def _bad(caption: str, scene: Scene = SCENE) -> list[str]:
    return [w.text for w in caption_label(scene, caption) if w.label not in ("true", "neutral")]


def test_canonical_and_random_captions_are_entirely_true():
    for seed in range(1500):
        scene = scene_sample(random.Random(seed))
        for rng in (None, random.Random(seed)):
            caption = caption_write(scene, rng)
            assert _bad(caption, scene) == [], caption
            assert object_recall(scene, caption) == 1.0


def test_labels_cover_every_word_with_its_span():
    labels = caption_label(SCENE, CAPTION)
    assert [(w.text, w.start, w.end) for w in labels] == [(CAPTION[w.start : w.end], w.start, w.end) for w in labels]
    assert len(labels) == len(CAPTION.split())
    assert {w.text: w.label for w in labels}["the"] == "neutral"


@pytest.mark.parametrize(
    ("original", "swapped"),
    [
        ("red", "purple"),  # colour
        ("circle", "star"),  # shape
        ("two", "three"),  # count
        ("K", "T"),  # letter
        ("small", "large"),  # size
    ],
)
def test_swapping_one_word_makes_exactly_that_word_hallucinated(original, swapped):
    words = CAPTION.split()
    index = words.index(original)
    words[index] = swapped
    labels = caption_label(SCENE, " ".join(words))
    assert [k for k, w in enumerate(labels) if w.label != "true" and w.label != "neutral"] == [index]
    assert labels[index].label == "hallucinated"


def test_a_wrong_relation_is_hallucinated_and_the_inverse_form_is_understood():
    assert _bad("a small red circle is right of two large blue squares .") == ["right"]
    assert _bad("a small red circle is above two large blue squares .") == ["above"]
    assert _bad("two large blue squares are right of a small red circle .") == []
    assert _bad("left of the blue squares is a red circle .") == []
    assert _bad("right of the blue squares is a red circle .") == ["right"]


def test_a_as_count_one_is_checked_on_the_noun():
    assert _labels("there is a large blue square .")["square"] == "hallucinated"
    assert _labels("there are two large blue squares .")["squares"] == "true"
    assert _labels("the blue square is visible .")["square"] == "hallucinated"


def test_a_shape_missing_from_the_scene_is_hallucinated_but_its_true_colour_is_not():
    labels = _labels("there is a small red star .")
    assert labels["star"] == "hallucinated"
    assert labels["red"] == labels["small"] == "true"


def test_the_noun_decides_which_group_a_phrase_is_about():
    labels = _labels("there is a small green circle .")
    assert labels["circle"] == "true" and labels["green"] == "hallucinated"


def test_garbage_gets_no_content_word_true_and_reports_unparsed_words():
    labels = caption_label(SCENE, "a red red is the of square blue .")
    by_text = [(w.text, w.label) for w in labels]
    assert ("red", "unparsed") in by_text and ("blue", "unparsed") in by_text
    # "square" alone claims one square; there are two
    assert ("square", "hallucinated") in by_text
    assert all(label != "true" for _, label in by_text)


def test_dangling_relations_letters_and_unknown_words_are_unparsed():
    assert _labels("left of .")["left"] == "unparsed"
    assert _labels("K is here .")["K"] == "unparsed"
    assert _labels("there is a small red circle .")["circle"] == "true"
    assert _labels("a small red blob .")["blob"] == "unparsed"


def test_negations_are_checked():
    assert _labels("there is no purple star .")["no"] == "true"
    labels = _labels("there is no red circle .")
    assert labels["no"] == "hallucinated" and labels["red"] == labels["circle"] == "true"
    assert _labels("the small red circle has no letter .")["no"] == "true"
    assert _labels("the green hexagon has no letter .")["no"] == "hallucinated"
    assert _labels("the green hexagon has the letter K .")["K"] == "true"


def test_object_recall_catches_captions_that_say_less():
    assert object_recall(SCENE, CAPTION) == 1.0
    assert object_recall(SCENE, "there is a small red circle .") == pytest.approx(1 / 3)
    assert object_recall(SCENE, "there is a small red star .") == 0.0


def test_word_kinds():
    kinds = {w: word_kind(w) for w in ["circles", "grey", "large", "three", "below", "K", "the", ".", "blob"]}
    assert kinds == {
        "circles": "shape",
        "grey": "colour",
        "large": "size",
        "three": "count",
        "below": "relation",
        "K": "letter",
        "the": "function",
        ".": "function",
        "blob": "unknown",
    }


def test_random_word_salad_never_breaks_the_parser_nor_earns_false_truths():
    # without "no": a true denial ("there is no white circle") rightly calls an absent colour true
    vocabulary = [*(w for w in VOCABULARY if w != "no"), "blob"]
    for seed in range(400):
        rng = random.Random(seed)
        scene = scene_sample(rng)
        caption = " ".join(rng.choice(vocabulary) for _ in range(rng.randint(0, 25)))
        labels = caption_label(scene, caption)
        assert [w.text for w in labels] == [w for w, _, _ in caption_words(caption)]
        for word in labels:
            assert word.label in LABELS
            kind = word_kind(word.text)
            if kind in ("function", "unknown"):
                assert word.label == ("neutral" if kind == "function" else "unparsed")
            if word.label == "true" and kind == "colour":
                assert any(g.colour == word.text for g in scene.groups)
            if word.label == "true" and kind == "letter":
                assert any(g.letter == word.text for g in scene.groups)


def test_a_phrase_is_read_as_the_group_most_of_its_words_fit():
    scene = Scene(
        groups=(
            ObjectGroup("triangle", "blue", "small", 1, None, ((0.2, 0.5),)),
            ObjectGroup("square", "red", "large", 1, None, ((0.7, 0.5),)),
        )
    )
    # One wrong noun is one wrong word, as a one-word correction would fix it; the relation still holds.
    assert _bad("a small blue triangle is left of a large red triangle .", scene) == ["triangle"]
