"""A captioner's hallucination rates: exact against the scenes (object recall beside them) and judged by TLDR."""

from __future__ import annotations

from pathlib import Path

import pytest

from training.evaluate import policy_evaluate


def test_evaluation_reports_exact_rates_with_object_recall_and_tldr_judged_rates(
    captioner_dir: Path, reward_dir: Path, world
):
    scenes, images = world
    report = policy_evaluate(captioner_dir=captioner_dir, images=images[:6], scenes=scenes[:6], reward_dir=reward_dir)
    assert report["images"] == 6
    assert {"H_T", "H_S", "H_R", "object_recall", "content_word_hallucination_rate"} <= set(report["exact"])
    assert report["exact"]["captions"] == 6
    assert {"H_T", "H_S", "H_R", "threshold"} <= set(report["tldr"])
    assert report["tldr"]["threshold"] == pytest.approx(0.5)  # the model's own calibrated θ
    assert 0.0 <= report["tldr"]["H_T"] <= 1.0
    assert len(report["sample_captions"]) == 6


def test_images_without_a_scene_are_left_out_of_the_exact_rates(captioner_dir: Path, world):
    scenes, images = world
    report = policy_evaluate(captioner_dir=captioner_dir, images=images[:3], scenes=[scenes[0], None, None])
    assert report["exact"]["captions"] == 1
    assert report["tldr"] is None
    assert policy_evaluate(captioner_dir=captioner_dir, images=images[:2])["exact"] is None


def test_scenes_must_match_the_images(captioner_dir: Path, world):
    scenes, images = world
    with pytest.raises(ValueError, match="2 scenes for 3 images"):
        policy_evaluate(captioner_dir=captioner_dir, images=images[:3], scenes=scenes[:2])
