"""Retraining TLDR on corrections: a held-out slice that never moves, and batches that mix corrections
with synthetic negatives of the same images."""

from __future__ import annotations

import random

import pytest
from PIL import Image

from reward.retrain import (
    CorrectionSample,
    RetrainConfig,
    TooFewCorrections,
    calibration_examples,
    corrections_split,
    keys_held_out,
    retrain_batches,
    retrain_steps,
    slice_position,
)
from shapeworld.grammar import caption_write
from shapeworld.render import scene_render
from shapeworld.scene import scene_sample


def test_the_split_is_deterministic_disjoint_and_about_a_fifth_held_out():
    keys = list(range(1, 2001))
    split = corrections_split(keys)
    assert split == corrections_split(list(reversed(keys)))
    parts = [set(split.train), set(split.calibration), set(split.held_out)]
    assert set.union(*parts) == set(keys) and sum(map(len, parts)) == len(keys)
    assert 0.17 < len(split.held_out) / len(keys) < 0.23
    assert 0.07 < len(split.calibration) / len(keys) < 0.13


def test_a_correction_held_out_once_stays_held_out_as_more_arrive():
    early = set(corrections_split(list(range(1, 501))).held_out)
    later = set(corrections_split(list(range(1, 5001))).held_out)
    assert early <= later
    assert not early & set(corrections_split(list(range(1, 5001))).train)


def test_a_small_project_still_holds_out_a_few_and_trains_on_the_rest():
    split = corrections_split([11, 12, 13, 14, 15], min_held_out=3)
    assert len(split.held_out) == 3 and split.train and not set(split.train) & set(split.held_out)
    with pytest.raises(TooFewCorrections, match="3 corrections: at least 4 are needed"):
        corrections_split([1, 2, 3], min_held_out=3)


def test_held_out_keys_are_those_lowest_in_hash_order():
    keys = list(range(100))
    assert keys_held_out(keys, share=0.0, minimum=4) == sorted(keys, key=slice_position)[:4]
    assert all(slice_position(key) < 0.3 for key in keys_held_out(keys, share=0.3, minimum=1))


def _samples(n: int, *, scenes: bool) -> list[CorrectionSample]:
    rng = random.Random(0)
    samples = []
    for key in range(n):
        scene = scene_sample(rng)
        truth = caption_write(scene)
        samples.append(
            CorrectionSample(
                key=key,
                image=scene_render(scene),
                original=truth.replace(" ", " purple ", 1),
                corrected=truth,
                scene=scene if scenes else None,
            )
        )
    return samples


@pytest.mark.parametrize("scenes", [True, False])
def test_batches_mix_corrections_with_synthetic_examples_of_their_images(scenes):
    samples = _samples(6, scenes=scenes)
    batches = retrain_batches(samples, random.Random(1), batch_size=8, synthetic_share=0.5)
    seen = [next(batches) for _ in range(6)]
    assert all(len(batch) == 8 for batch in seen)
    categories = [example.category for batch in seen for example in batch]
    assert categories.count("correction") == 24  # half of every batch
    assert "true" in categories and len(set(categories)) >= 3  # true captions and hard negatives
    corrections = [e for batch in seen for e in batch if e.category == "correction"]
    assert all([e.caption[s:t] for s, t in e.bad_spans] == ["purple"] for e in corrections)
    images = {id(s.image) for s in samples}
    assert all(id(example.image) in images for batch in seen for example in batch)
    if not scenes:  # without a scene, the corrected caption is the true one
        assert {e.caption for b in seen for e in b if e.category == "true"} <= {s.corrected for s in samples}


def test_a_retraining_run_needs_a_budget_and_a_sane_mix():
    with pytest.raises(ValueError, match="needs a budget"):
        RetrainConfig(minutes=None, max_steps=None)
    with pytest.raises(ValueError, match="synthetic_share"):
        RetrainConfig(synthetic_share=1.0)
    assert isinstance(_samples(1, scenes=True)[0].image, Image.Image)


def test_calibration_balances_corrections_with_true_captions_of_the_same_images():
    samples = _samples(4, scenes=True)
    examples = calibration_examples(samples, seed=0)
    assert [e.category for e in examples].count("correction") == 4
    assert sum(e.is_good for e in examples) >= 4  # without them, "every caption is bad" would pick θ
    assert examples == calibration_examples(samples, seed=0)


def test_retraining_steps_are_capped_at_a_few_passes_over_the_corrections():
    # 8 corrections a batch (16, half synthetic): 3 passes over 400 corrections are 150 steps.
    assert retrain_steps(RetrainConfig(minutes=10, epochs=3.0), 400) == 150
    assert retrain_steps(RetrainConfig(minutes=10, epochs=3.0, max_steps=20), 400) == 20
    # Fewer corrections than a batch holds: each batch carries all of them.
    assert retrain_steps(RetrainConfig(minutes=10, epochs=2.0), 5) == 2
