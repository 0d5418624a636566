"""One call that turns a captioner and what annotators did into a better captioner: `policy_train`.

Methods:
- "ppo_tokens": PPO with TLDR's word scores as token-level rewards (FiSAO Eq. 7/8 normalisation);
- "ppo_sentence": the same PPO with one whole-caption reward from the same TLDR model (the baseline);
- "ppo_verifier": PPO with an image-text verifier's entity-word scores as rewards (FiSAO's verifier);
- "sft": supervised fine-tuning on the annotators' corrected captions.

PPO samples captions of `images`; the Eq. 7 baselines come from labelled captions the captioner
wrote itself: sampled for images with a known scene (labelled by the shapeworld parser) when scenes
are given, else the corrections' originals (labelled by the word alignment with their fixes). The
result is a complete plain captioner in `out_dir`, which the caller renames into place.
"""

from __future__ import annotations

import json
import random
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Literal, get_args

import torch
from PIL import Image

from reward.data import LabelledCaption, correction_example, own_caption_examples
from reward.vlm import captions_generate, default_device
from shapeworld.scene import Scene
from training.policy import CaptionPolicy, PolicyConfig, policy_save
from training.ppo import PpoConfig, budget_check, ppo_train
from training.rewards import (
    PROBABILITY_BASELINES,
    Baselines,
    ClaimSpan,
    Judge,
    ShapingConfig,
    baselines_from_labelled,
    entity_phrase_span,
    judged_token_rewards,
    sentence_rewards,
    tldr_judge,
    verifier_judge,
)
from training.sft import SftConfig, sft_train

Method = Literal["ppo_tokens", "ppo_sentence", "ppo_verifier", "sft"]
METHODS: tuple[str, ...] = get_args(Method)
STATS_FILE = "policy_train.json"
# Shares of the progress bar: judge loading and calibration before training, saving after it.
_SETUP_SHARE, _SAVE_SHARE = 0.05, 0.03


@dataclass(frozen=True)
class CaptionPair:
    """One correction: the image, the caption as written, the annotator's fix."""

    image: Image.Image
    original: str
    corrected: str


@dataclass
class PolicyTrainConfig:
    """What to train, for how long (minutes and/or `max_steps`: PPO rollouts or SFT steps), and how.

    `minutes` bounds the whole call but the final save. `calibration_captions` is how many labelled
    own captions estimate the Eq. 7 baselines. `device` None: a GPU when there is one.
    """

    method: Method = "ppo_tokens"
    minutes: float | None = 5.0
    max_steps: int | None = None
    seed: int = 0
    policy: PolicyConfig = field(default_factory=PolicyConfig)
    ppo: PpoConfig = field(default_factory=PpoConfig)
    sft: SftConfig = field(default_factory=SftConfig)
    shaping: ShapingConfig = field(default_factory=ShapingConfig)
    calibration_captions: int = 128
    device: str | None = None

    def __post_init__(self) -> None:
        if self.method not in METHODS:
            raise ValueError(f"unknown method {self.method!r}: use one of {', '.join(METHODS)}")
        budget_check(self.minutes, self.max_steps)


def policy_train(
    *,
    captioner_dir: Path,
    out_dir: Path,
    config: PolicyTrainConfig,
    images: list[Image.Image],
    corrections: list[CaptionPair],
    reward_dir: Path | None = None,
    verifier_dir: Path | None = None,
    scenes: list[Scene | None] | None = None,
    on_progress: Callable[[float, str], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> dict:
    """Train the captioner at `captioner_dir` by `config.method`; save a plain captioner to `out_dir`.

    `scenes[i]`, where given, is the ground truth of `images[i]` (None where unknown). Raises
    `ValueError` naming what the method lacks (a reward model, a verifier, corrections, images).
    Returns the run's statistics (steps, seconds, mean reward, KL, losses, stopped_early, baselines).
    """
    started = time.monotonic()
    rollout_images = _inputs_check(config, images, corrections, reward_dir, verifier_dir, scenes)
    report = on_progress or (lambda fraction, message: None)
    device = torch.device(config.device) if config.device else default_device()
    report(0.0, f"loading captioner {captioner_dir}")
    policy = CaptionPolicy.load(captioner_dir, config.policy, seed=config.seed).to(device)
    progress = _progress_within(report, _SETUP_SHARE, 1 - _SAVE_SHARE)
    extra: dict = {}
    if config.method == "sft":
        stats = sft_train(
            policy,
            [(c.image, c.corrected) for c in corrections if c.corrected.strip()],
            config.sft,
            minutes=_minutes_left(config.minutes, started),
            max_steps=config.max_steps,
            seed=config.seed,
            on_progress=progress,
            should_stop=should_stop,
        )
    else:
        judge, default, claim_span = _judge(config.method, reward_dir, verifier_dir, device)
        report(0.01, "estimating reward baselines (Eq. 7)")
        calibration, source = _calibration_examples(policy, images, scenes, corrections, config)
        baselines = default
        if calibration:
            baselines = baselines_from_labelled(judge, calibration, default=default, claim_span=claim_span)
        shape = sentence_rewards if config.method == "ppo_sentence" else judged_token_rewards
        stats = ppo_train(
            policy,
            rollout_images,
            shape(judge, baselines, config.shaping),
            config.ppo,
            minutes=_minutes_left(config.minutes, started),
            max_rollouts=config.max_steps,
            seed=config.seed,
            on_progress=progress,
            should_stop=should_stop,
        )
        extra["baselines"] = {**asdict(baselines), "separated": baselines.separated, "source": source}
    report(1 - _SAVE_SHARE, f"saving captioner to {out_dir}")
    policy_save(policy, out_dir)
    stats = {
        "method": config.method,
        **stats,
        **extra,
        "captioner": str(captioner_dir),
        "seconds": round(time.monotonic() - started, 1),
        "train_seconds": stats["seconds"],
    }
    (Path(out_dir) / STATS_FILE).write_text(json.dumps(stats, indent=2) + "\n", encoding="utf-8")
    report(1.0, f"saved captioner to {out_dir}")
    return stats


def _inputs_check(
    config: PolicyTrainConfig,
    images: list[Image.Image],
    corrections: list[CaptionPair],
    reward_dir: Path | None,
    verifier_dir: Path | None,
    scenes: list[Scene | None] | None,
) -> list[Image.Image]:
    """The images PPO samples captions for; a ValueError naming whatever the method lacks."""
    method = config.method
    if method in ("ppo_tokens", "ppo_sentence") and reward_dir is None:
        raise ValueError(f"method {method!r} needs a TLDR reward model: pass reward_dir")
    if method == "ppo_verifier" and verifier_dir is None:
        raise ValueError("method 'ppo_verifier' needs a verifier: pass verifier_dir")
    if method == "sft" and not corrections:
        raise ValueError("method 'sft' needs corrections to fine-tune on; there are none")
    if scenes is not None and len(scenes) != len(images):
        raise ValueError(f"{len(scenes)} scenes for {len(images)} images; give one per image (None where unknown)")
    rollout_images = images or [c.image for c in corrections]
    if method != "sft" and not rollout_images:
        raise ValueError(f"method {method!r} needs images to sample captions for; there are none")
    has_scene = any(scene is not None for scene in scenes or [])
    if method == "ppo_verifier" and not has_scene and not corrections:
        raise ValueError(
            "method 'ppo_verifier' needs labelled captions for its reward baselines (Eq. 7): give scenes or corrections"
        )
    return rollout_images


def _minutes_left(minutes: float | None, started: float) -> float | None:
    """What remains of the whole call's budget for the training loop (loading and calibration come first)."""
    return None if minutes is None else max(minutes - (time.monotonic() - started) / 60, 1e-3)


def _progress_within(report: Callable[[float, str], None], low: float, high: float) -> Callable[[float, str], None]:
    """A trainer's 0..1 progress shown as low..high of the whole call's bar."""
    return lambda fraction, message: report(low + (high - low) * fraction, message)


def _judge(
    method: str, reward_dir: Path | None, verifier_dir: Path | None, device: torch.device
) -> tuple[Judge, Baselines | None, ClaimSpan | None]:
    """A PPO method's word judge, the baselines it falls back to where no label shows a side, and
    what its scores claim (the verifier scores a noun's whole phrase)."""
    if method == "ppo_verifier":
        from training.verifier import Verifier

        return verifier_judge(Verifier.load(verifier_dir)), None, entity_phrase_span
    from reward.model import TokenRewardModel

    reward_model, processor = TokenRewardModel.load(reward_dir)
    return tldr_judge(reward_model.to(device), processor), PROBABILITY_BASELINES, None


def _calibration_examples(
    policy: CaptionPolicy,
    images: list[Image.Image],
    scenes: list[Scene | None] | None,
    corrections: list[CaptionPair],
    config: PolicyTrainConfig,
) -> tuple[list[LabelledCaption], str]:
    """Labelled own responses for Eq. 7, and where their labels come from.

    With scenes: captions the policy samples now (the distribution PPO starts from) for up to
    `calibration_captions` images with a scene, labelled by the parser. Otherwise the corrections'
    originals, labelled by the alignment with their fixes. Neither: none (the judge's defaults apply).
    """
    rng = random.Random(config.seed)
    known = [i for i, scene in enumerate(scenes or []) if scene is not None]
    if known:
        chosen = rng.sample(known, min(config.calibration_captions, len(known)))
        chosen_images = [images[i] for i in chosen]
        captions = captions_generate(
            policy.vlm,
            policy.processor,
            chosen_images,
            instruction=config.policy.instruction,
            max_new_tokens=config.policy.max_new_tokens,
            do_sample=True,
            temperature=config.policy.temperature,
            seed=config.seed,
        )
        return own_caption_examples([scenes[i] for i in chosen], chosen_images, captions), "scenes"
    if corrections:
        chosen = rng.sample(corrections, min(config.calibration_captions, len(corrections)))
        return [correction_example(c.image, c.original, c.corrected) for c in chosen], "corrections"
    return [], "default"
