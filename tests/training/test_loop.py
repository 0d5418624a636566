"""`policy_train`, the call the web app makes: every method trains, saves a plain captioner and says what it did."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from reward.vlm import captions_generate, vlm_load
from shapeworld.grammar import caption_write
from training.loop import STATS_FILE, CaptionPair, PolicyTrainConfig, policy_train
from training.policy import PolicyConfig
from training.ppo import PpoConfig

VERIFIER_MISSING = not (Path(__file__).parents[2] / "training" / "verifier.py").is_file()


def _config(method: str, **changes) -> PolicyTrainConfig:
    """A seconds-long run: two rollouts (or steps) of eight short captions."""
    settings = {
        "method": method,
        "minutes": None,
        "max_steps": 2,
        "policy": PolicyConfig(max_new_tokens=6),
        "ppo": PpoConfig(rollout_batch_size=8, minibatch_size=8, ppo_epochs=2),
        "calibration_captions": 8,
    }
    return PolicyTrainConfig(**(settings | changes))


def _corrections(world) -> list[CaptionPair]:
    """Captions with one wrong colour each, and their fixes (the true captions)."""
    scenes, images = world
    pairs = []
    for scene, image in zip(scenes[:8], images[:8], strict=True):
        true = caption_write(scene)
        colour = scene.groups[0].colour
        wrong = true.replace(colour, "grey" if colour != "grey" else "red", 1)
        pairs.append(CaptionPair(image, wrong, true))
    return pairs


def _assert_plain_captioner(directory: Path, images) -> None:
    model, processor = vlm_load(str(directory))
    assert len(captions_generate(model, processor, images[:2], max_new_tokens=4)) == 2


def test_ppo_with_token_rewards_trains_saves_and_reports(captioner_dir: Path, reward_dir: Path, world, tmp_path):
    scenes, images = world
    progress = []
    stats = policy_train(
        captioner_dir=captioner_dir,
        out_dir=tmp_path / "out",
        config=_config("ppo_tokens"),
        images=images,
        corrections=[],
        reward_dir=reward_dir,
        scenes=scenes,
        on_progress=lambda fraction, message: progress.append(fraction),
    )
    assert stats["method"] == "ppo_tokens" and stats["steps"] == 2 and not stats["stopped_early"]
    assert {"seconds", "mean_reward", "kl", "policy_loss", "value_loss"} <= set(stats)
    assert stats["baselines"]["source"] == "scenes"
    assert stats["baselines"]["correct_words"] + stats["baselines"]["hallucinated_words"] > 0
    assert progress == sorted(progress) and progress[-1] == 1.0
    assert json.loads((tmp_path / "out" / STATS_FILE).read_text())["steps"] == 2
    _assert_plain_captioner(tmp_path / "out", images)


def test_sentence_rewards_take_their_baselines_from_the_corrections(captioner_dir, reward_dir, world, tmp_path):
    _, images = world
    stats = policy_train(
        captioner_dir=captioner_dir,
        out_dir=tmp_path / "out",
        config=_config("ppo_sentence"),
        images=images,
        corrections=_corrections(world),
        reward_dir=reward_dir,
    )
    assert stats["baselines"]["source"] == "corrections"
    assert stats["baselines"]["hallucinated_words"] == 8  # one wrong colour in each of the eight
    _assert_plain_captioner(tmp_path / "out", images)


def test_sft_trains_on_the_corrections(captioner_dir: Path, world, tmp_path: Path):
    _, images = world
    stats = policy_train(
        captioner_dir=captioner_dir,
        out_dir=tmp_path / "out",
        config=_config("sft"),
        images=[],
        corrections=_corrections(world),
    )
    assert stats["method"] == "sft" and stats["steps"] == 2
    _assert_plain_captioner(tmp_path / "out", images)


def test_a_stop_request_ends_training_early_and_still_saves(captioner_dir: Path, reward_dir: Path, world, tmp_path):
    _, images = world
    stats = policy_train(
        captioner_dir=captioner_dir,
        out_dir=tmp_path / "out",
        config=_config("ppo_tokens", max_steps=50),
        images=images,
        corrections=[],
        reward_dir=reward_dir,
        should_stop=lambda: True,
    )
    assert stats["stopped_early"] is True and stats["steps"] == 0
    assert stats["baselines"]["source"] == "default"  # no scenes, no corrections: TLDR's probability scale
    _assert_plain_captioner(tmp_path / "out", images)


@pytest.mark.parametrize(
    ("method", "arguments", "message"),
    [
        ("ppo_tokens", {}, "needs a TLDR reward model: pass reward_dir"),
        ("ppo_sentence", {}, "needs a TLDR reward model: pass reward_dir"),
        ("ppo_verifier", {}, "needs a verifier: pass verifier_dir"),
        ("ppo_verifier", {"verifier_dir": Path("v")}, "needs labelled captions"),
        ("sft", {}, "needs corrections"),
        ("ppo_tokens", {"reward_dir": Path("r"), "images": []}, "needs images"),
        ("ppo_tokens", {"reward_dir": Path("r"), "scenes": [None]}, "1 scenes for 16 images"),
    ],
)
def test_what_a_method_lacks_is_named(method: str, arguments: dict, message: str, world, tmp_path: Path):
    _, images = world
    call = {"images": images, "corrections": [], **arguments}
    with pytest.raises(ValueError, match=message):
        policy_train(captioner_dir=Path("nowhere"), out_dir=tmp_path, config=_config(method), **call)


def test_an_unknown_method_or_a_missing_budget_is_refused():
    with pytest.raises(ValueError, match="unknown method 'dpo'"):
        PolicyTrainConfig(method="dpo")
    with pytest.raises(ValueError, match="needs a budget"):
        PolicyTrainConfig(minutes=None, max_steps=None)


@pytest.mark.skipif(VERIFIER_MISSING, reason="training/verifier.py (the verifier) is not there yet")
def test_ppo_with_verifier_rewards(captioner_dir: Path, world, tmp_path: Path):
    from training.verifier import Verifier, VerifierConfig

    _, images = world
    Verifier(VerifierConfig(image_size=32)).save(tmp_path / "verifier")
    stats = policy_train(
        captioner_dir=captioner_dir,
        out_dir=tmp_path / "out",
        config=_config("ppo_verifier"),
        images=images,
        corrections=_corrections(world),
        verifier_dir=tmp_path / "verifier",
    )
    # The verifier judges whole phrases: each wrong colour makes its phrase's noun hallucinated.
    assert stats["baselines"]["hallucinated_words"] == 8
    assert stats["baselines"]["correct_words"] > 0
    _assert_plain_captioner(tmp_path / "out", images)
