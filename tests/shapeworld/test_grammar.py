import random

from shapeworld.grammar import VOCABULARY, caption_words, caption_write
from shapeworld.scene import ObjectGroup, Scene, scene_sample

TWO_GROUPS = Scene(
    groups=(
        ObjectGroup("circle", "red", "small", 1, None, ((0.2, 0.5),)),
        ObjectGroup("square", "blue", "large", 2, None, ((0.7, 0.3), (0.7, 0.7))),
    )
)


def test_canonical_caption_of_one_group():
    scene = Scene(groups=(ObjectGroup("square", "red", "large", 1, "K", ((0.5, 0.5),)),))
    assert caption_write(scene) == "there is a large red square with the letter K ."


def test_canonical_caption_relates_neighbours_left_to_right():
    assert caption_write(TWO_GROUPS) == "a small red circle is left of two large blue squares ."


def test_later_mentions_are_definite():
    scene = Scene(groups=(*TWO_GROUPS.groups, ObjectGroup("star", "green", "small", 1, None, ((0.95, 0.5),))))
    assert caption_write(scene) == (
        "a small red circle is left of two large blue squares . the large blue squares are left of a small green star ."
    )


def test_canonical_caption_is_fixed_and_short():
    for seed in range(300):
        scene = scene_sample(random.Random(seed))
        caption = caption_write(scene)
        assert caption == caption_write(scene)
        assert caption.count(".") == max(1, len(scene.groups) - 1)
        assert len(caption_words(caption)) <= 48


def test_random_phrasings_vary_but_repeat_for_the_same_seed():
    captions = {caption_write(TWO_GROUPS, random.Random(seed)) for seed in range(60)}
    assert len(captions) >= 6
    assert caption_write(TWO_GROUPS, random.Random(5)) == caption_write(TWO_GROUPS, random.Random(5))


def test_vocabulary_covers_every_caption_in_every_phrasing():
    vocabulary = set(VOCABULARY)
    for seed in range(2000):
        scene = scene_sample(random.Random(seed))
        for rng in (None, random.Random(seed), random.Random(-seed - 1)):
            words = {w for w, _, _ in caption_words(caption_write(scene, rng))}
            assert words <= vocabulary, words - vocabulary


def test_caption_words_keep_offsets_and_split_punctuation():
    caption = "a red circle, marked K."
    words = caption_words(caption)
    assert [w for w, _, _ in words] == ["a", "red", "circle", ",", "marked", "K", "."]
    assert all(caption[start:end] == w for w, start, end in words)
