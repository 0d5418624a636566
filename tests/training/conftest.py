"""Fixtures of the training tests: a micro captioner and an untrained TLDR model on it, saved once.

The captioner is randomly initialised (no pretraining): every test here checks mechanics or a
planted reward, never caption quality, so seconds of setup are enough. Nothing reaches the hub.
"""

from __future__ import annotations

import os

os.environ["HF_HUB_OFFLINE"] = "1"

import random
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch
from PIL import Image

from reward.model import RewardConfig, TokenRewardModel
from reward.vlm import vlm_load
from shapeworld.render import scene_render
from shapeworld.scene import Scene, scene_sample
from shapeworld.tiny_vlm import tiny_vlm_build
from tests.shapeworld.micro import MICRO
from training.policy import CaptionPolicy, PolicyConfig, policy_save
from training.ppo import PpoConfig, ppo_train


@pytest.fixture(scope="session")
def captioner_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A randomly initialised micro captioner, saved as any captioner is (model + processor)."""
    directory = tmp_path_factory.mktemp("captioner")
    model, processor = tiny_vlm_build(MICRO, seed=0)
    model.save_pretrained(directory)
    processor.save_pretrained(directory)
    return directory


@pytest.fixture(scope="session")
def reward_dir(captioner_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An untrained TLDR model on the micro captioner (random head: scores are arbitrary but well-formed)."""
    directory = tmp_path_factory.mktemp("tldr")
    vlm, _ = vlm_load(str(captioner_dir))
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        model = TokenRewardModel.build(vlm, RewardConfig(lora_r=4, lora_alpha=8), base_model=str(captioner_dir))
    model.save(directory)
    return directory


@pytest.fixture(scope="session")
def world() -> tuple[list[Scene], list[Image.Image]]:
    """Sixteen scenes and their 32-pixel images."""
    rng = random.Random(0)
    scenes = [scene_sample(rng) for _ in range(16)]
    return scenes, [scene_render(scene, MICRO.image_size) for scene in scenes]


# ----------------------------------------------------------------------------- a planted-reward PPO run

TARGET_WORD = "circle"
PROBE_CAPTION = "a red circle is left of a blue square ."


def planted_rewards(images: list[Image.Image], captions: list[str], token_spans: list[list[tuple[int, int]]]):
    """+1 on every token that spells TARGET_WORD, 0 elsewhere: the only thing worth learning is that word."""
    return [
        [1.0 if caption[s:e] == TARGET_WORD else 0.0 for s, e in spans]
        for caption, spans in zip(captions, token_spans, strict=True)
    ]


def target_probability(policy, images: list[Image.Image]) -> float:
    """Mean π(TARGET_WORD as the caption's first token | image)."""
    sequences = policy.teacher_forced(images, [TARGET_WORD] * len(images))
    with torch.no_grad():
        log_probs, _ = policy(sequences, with_values=False)
    return log_probs[:, 0].exp().mean().item()


@dataclass
class PlantedRun:
    stats: dict
    before: float
    after: float
    probe: object  # Sequences of PROBE_CAPTION for every image
    policy_log_probs: torch.Tensor
    reference_log_probs: torch.Tensor
    saved_dir: Path


@pytest.fixture(scope="session")
def planted_run(captioner_dir: Path, world, tmp_path_factory: pytest.TempPathFactory) -> PlantedRun:
    """Six PPO rollouts of the micro captioner under the planted reward, then the policy saved."""
    _, images = world
    policy = CaptionPolicy.load(captioner_dir, PolicyConfig(max_new_tokens=4), seed=0)
    before = target_probability(policy, images)
    config = PpoConfig(rollout_batch_size=32, minibatch_size=16, lr=3e-2, kl_coef=0.0)
    stats = ppo_train(policy, images, planted_rewards, config, minutes=None, max_rollouts=6, seed=0)
    after = target_probability(policy, images)
    probe = policy.teacher_forced(images, [PROBE_CAPTION] * len(images))
    with torch.no_grad():
        policy_log_probs, _ = policy(probe, with_values=False)
    reference_log_probs = policy.reference_log_probs(probe)
    saved_dir = policy_save(policy, tmp_path_factory.mktemp("planted"))
    return PlantedRun(stats, before, after, probe, policy_log_probs, reference_log_probs, saved_dir)
