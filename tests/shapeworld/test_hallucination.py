import random

import pytest

from shapeworld.grammar import caption_write
from shapeworld.hallucination import captioner_rates
from shapeworld.scene import ObjectGroup, Scene, scene_sample


def _scene() -> Scene:
    return Scene(
        groups=(
            ObjectGroup("circle", "red", "small", 1, None, ((0.2, 0.5),)),
            ObjectGroup("square", "blue", "large", 2, None, ((0.7, 0.4), (0.75, 0.65))),
        )
    )


def test_true_captions_have_no_hallucination_and_full_recall():
    rng = random.Random(3)
    scenes = [scene_sample(rng) for _ in range(100)]
    rates = captioner_rates(scenes, [caption_write(s, rng) for s in scenes])
    assert rates["content_word_hallucination_rate"] == 0.0
    assert rates["H_T"] == rates["H_S"] == rates["H_R"] == 0.0
    assert rates["object_recall"] == 1.0


def test_one_wrong_colour_counts_once_in_every_rate():
    caption = "a small green circle is left of two large blue squares ."
    rates = captioner_rates([_scene()], [caption])
    # content words: small green circle left two large blue squares -> 8, one bad
    assert rates["content_word_hallucination_rate"] == pytest.approx(1 / 8)
    assert rates["H_T"] == pytest.approx(1 / 12)
    assert rates["H_S"] == 1.0 and rates["H_R"] == 1.0
    assert rates["per_kind"]["colour"] == pytest.approx(0.5)
    assert rates["exact_match"] == 0.0


def test_a_caption_that_says_less_keeps_its_rate_but_loses_recall():
    rates = captioner_rates([_scene()], ["there is a small red circle ."])
    assert rates["content_word_hallucination_rate"] == 0.0
    assert rates["object_recall"] == pytest.approx(0.5)


def test_unparsed_content_words_are_never_true():
    rates = captioner_rates([_scene()], ["a red red is the of square blue ."])
    assert rates["H_R"] == 1.0
    assert rates["content_word_hallucination_rate"] > 0.3
