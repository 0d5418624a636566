import dataclasses
import random

import pytest

from shapeworld.grammar import VOCABULARY, caption_words, caption_write
from shapeworld.parser import caption_label, caption_parse
from shapeworld.perturb import CATEGORIES, caption_perturb, caption_perturb_any
from shapeworld.scene import ObjectGroup, Scene, scene_sample

SCENE = Scene(
    groups=(
        ObjectGroup("circle", "red", "small", 1, None, ((0.2, 0.5),)),
        ObjectGroup("square", "blue", "large", 2, None, ((0.6, 0.3), (0.6, 0.7))),
        ObjectGroup("hexagon", "green", "large", 1, "K", ((0.85, 0.5),)),
    )
)
CAPTION = caption_write(SCENE)


def _changed(before: str, after: str) -> list[str]:
    """Words of `after` that differ from `before` at the same position (single-word swaps)."""
    return [b for a, b in zip(before.split(), after.split(), strict=False) if a != b]


def _hallucinated(perturbation) -> list[str]:
    return [w.text for w in perturbation.words if w.label == "hallucinated"]


@pytest.mark.parametrize("category", CATEGORIES)
def test_every_category_applies_to_a_rich_scene_and_the_parser_agrees(category):
    for seed in range(20):
        perturbation = caption_perturb(SCENE, CAPTION, category, random.Random(seed))
        assert perturbation is not None and perturbation.category == category
        assert perturbation.caption != CAPTION
        assert _hallucinated(perturbation)
        assert perturbation.words == caption_label(SCENE, perturbation.caption)
        assert all(w.label != "unparsed" for w in perturbation.words)


def test_perturbations_hold_over_many_scenes_and_phrasings():
    applied = dict.fromkeys(CATEGORIES, 0)
    for seed in range(250):
        scene = scene_sample(random.Random(seed))
        for rng in (None, random.Random(seed)):
            caption = caption_write(scene, rng)
            for category in CATEGORIES:
                perturbation = caption_perturb(scene, caption, category, random.Random(seed), n_changes=1 + seed % 2)
                if perturbation is None:
                    continue
                applied[category] += 1
                assert _hallucinated(perturbation), (caption, perturbation.caption)
                assert {w for w, _, _ in caption_words(perturbation.caption)} <= set(VOCABULARY)
    assert all(n > 50 for n in applied.values()), applied


def test_spatial_change_takes_the_opposite_or_the_other_axis_in_grammatical_form():
    """The groups of SCENE sit side by side: "right", "above" and "below" are all wrong, and only they."""
    seen = set()
    for seed in range(30):
        perturbation = caption_perturb(SCENE, CAPTION, "spatial_relationship", random.Random(seed))
        (wrong,) = _hallucinated(perturbation)
        seen.add(wrong)
        words = perturbation.caption.split()
        after = words[words.index(wrong) + 1]
        assert (after == "of") == (wrong in ("left", "right")), perturbation.caption
        assert perturbation.caption.replace(f"{wrong} of", "left of").replace(wrong, "left of") == CAPTION
    assert seen == {"right", "above", "below"}


def test_spatial_change_on_the_other_axis_keeps_a_relation_that_still_holds_true():
    """Of two diagonal groups both "left of" and "above" hold: "above" is no negative, "below" is."""
    diagonal = Scene(groups=(SCENE.groups[0], dataclasses.replace(SCENE.groups[2], positions=((0.6, 0.8),))))
    caption = "a small red circle is left of a large green hexagon with the letter K ."
    assert all(w.label != "hallucinated" for w in caption_label(diagonal, caption.replace("left of", "above")))
    for seed in range(20):
        perturbation = caption_perturb(diagonal, caption, "spatial_relationship", random.Random(seed))
        assert _hallucinated(perturbation) in (["right"], ["below"])


def test_spatial_does_not_apply_without_a_relation():
    single = Scene(groups=SCENE.groups[:1])
    assert caption_perturb(single, caption_write(single), "spatial_relationship", random.Random(0)) is None


def test_counting_keeps_the_grammar_in_agreement():
    single = Scene(groups=SCENE.groups[:1])
    for seed in range(10):
        perturbation = caption_perturb(single, "there is a small red circle .", "counting", random.Random(seed))
        words = perturbation.caption.split()
        assert words[1] == "are" and words[-2] == "circles" and _hallucinated(perturbation) == [words[2]]


def test_small_object_changes_only_what_is_described_as_small():
    for seed in range(20):
        perturbation = caption_perturb(SCENE, CAPTION, "small_object", random.Random(seed))
        before, after = CAPTION.split(), perturbation.caption.split()
        (changed,) = [k for k, (a, b) in enumerate(zip(before, after, strict=True)) if a != b]
        phrase = next(p for p in caption_parse(perturbation.caption).phrases if p.start <= changed <= p.noun)
        assert [size for _, size in phrase.sizes] == ["small"]
        assert perturbation.words[changed].label == "hallucinated"


def test_text_ocr_misreads_a_letter_or_invents_one():
    misread = caption_perturb(SCENE, CAPTION, "text_ocr", random.Random(0))
    assert len(_changed(CAPTION, misread.caption)) == 1 and _hallucinated(misread)[0] in misread.caption
    plain = Scene(groups=SCENE.groups[:2])
    invented = caption_perturb(plain, caption_write(plain), "text_ocr", random.Random(0))
    assert "with the letter" in invented.caption and len(_hallucinated(invented)) == 1


def test_counterfactual_denies_what_is_there():
    for seed in range(10):
        perturbation = caption_perturb(SCENE, CAPTION, "counterfactual", random.Random(seed))
        assert perturbation.caption.startswith(CAPTION)
        assert _hallucinated(perturbation) == ["no"]


def test_binding_swaps_attributes_between_two_objects():
    perturbation = caption_perturb(SCENE, CAPTION, "attribute_binding", random.Random(0))
    changed = _changed(CAPTION, perturbation.caption)
    assert len(changed) == 2 and sorted(changed) == sorted(_hallucinated(perturbation))


def test_any_picks_an_applicable_category_deterministically():
    single = Scene(groups=SCENE.groups[:1])
    caption = caption_write(single)
    for seed in range(30):
        perturbation = caption_perturb_any(single, caption, random.Random(seed))
        assert perturbation.category != "spatial_relationship"
    first = caption_perturb_any(SCENE, CAPTION, random.Random(4), n_changes=2)
    assert first == caption_perturb_any(SCENE, CAPTION, random.Random(4), n_changes=2)


def test_two_changes_give_at_least_as_many_hallucinated_words():
    one = [len(_hallucinated(caption_perturb(SCENE, CAPTION, "visual_attribute", random.Random(s)))) for s in range(20)]
    two = [
        len(_hallucinated(caption_perturb(SCENE, CAPTION, "visual_attribute", random.Random(s), n_changes=2)))
        for s in range(20)
    ]
    assert min(two) >= 1 and sum(two) > sum(one)


def test_unknown_category_is_refused_by_name():
    with pytest.raises(ValueError, match="colour_swap"):
        caption_perturb(SCENE, CAPTION, "colour_swap", random.Random(0))
