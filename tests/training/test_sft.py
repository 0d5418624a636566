"""Supervised fine-tuning on corrections lowers the loss and makes the saved captioner prefer the fixes."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from shapeworld.grammar import caption_write
from training.policy import CaptionPolicy, PolicyConfig, policy_save
from training.sft import SftConfig, sft_loss, sft_train


def _caption_log_likelihood(policy: CaptionPolicy, images, captions) -> float:
    sequences = policy.teacher_forced(images, captions)
    with torch.no_grad():
        log_probs, _ = policy(sequences, with_values=False)
    return float((log_probs * sequences.response_mask).sum(dim=1).mean())


def test_sft_loss_is_the_mean_negative_log_likelihood_of_the_response_tokens():
    log_probs = torch.tensor([[-1.0, -3.0, -100.0]])
    assert sft_loss(log_probs, torch.tensor([[True, True, False]])).item() == pytest.approx(2.0)


def test_sft_lowers_the_loss_and_the_saved_captioner_prefers_the_corrected_captions(
    captioner_dir: Path, world, tmp_path: Path
):
    scenes, images = world
    targets = [caption_write(scene) for scene in scenes[:8]]
    policy = CaptionPolicy.load(captioner_dir, PolicyConfig(), seed=0)
    before = _caption_log_likelihood(policy, images[:8], targets)
    stats = sft_train(
        policy,
        list(zip(images[:8], targets, strict=True)),
        SftConfig(batch_size=8, lr=1e-2),
        minutes=None,
        max_steps=15,
    )
    assert stats["steps"] == 15 and not stats["stopped_early"]
    assert stats["final_loss"] < stats["first_loss"]
    policy_save(policy, tmp_path / "sft")
    saved = CaptionPolicy.load(tmp_path / "sft")  # a fresh adapter changes nothing: this is the saved model
    assert _caption_log_likelihood(saved, images[:8], targets) > before + 1.0
