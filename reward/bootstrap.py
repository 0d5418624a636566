"""The first run: train the built-in captioner and a TLDR model on it, evaluate both, cache the result.

Both models are written to a temporary directory and renamed into place only once complete, so an
interrupted bootstrap never leaves a half-written model that a later run would take as cached.
The TLDR backbone is the captioner itself (as in the paper, where the reward model is a VLM
fine-tuned with LoRA), which is also what makes "likelihood optimisation for free" possible.
"""

from __future__ import annotations

import json
import random
import shutil
import time
from collections.abc import Callable
from contextlib import closing
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path
from typing import Literal

from reward.calibrate import threshold_calibrate
from reward.evaluate import VALIDATION_SEED, held_out_scenes, own_caption_set, perturbation_set, reward_evaluate
from reward.model import MANIFEST, RewardConfig, TokenRewardModel
from reward.train import TrainConfig, reward_train, shapeworld_batches
from reward.vlm import vlm_load
from shapeworld.hallucination import captioner_rates
from shapeworld.pretrain import PretrainConfig, captioner_pretrain
from shapeworld.scene import WorldConfig

CAPTIONER = "captioner-v0"
REWARD_MODEL = "tldr-v0"
REPORT = "bootstrap.json"

Progress = Callable[[float, str], None]


@dataclass
class BootstrapConfig:
    """Budgets of the first run; the defaults fit ten minutes on a 2-core CPU."""

    captioner_minutes: float = 6.0
    reward_minutes: float = 3.0
    reward_batch_size: int = 32
    reward_lr: float = 2e-3
    # Share of each reward-model batch that is the captioner's own captions (the rest: perturbations).
    # A trade-off on the built-in backbone (bench/reward_variants.py): own captions teach which word
    # kinds this captioner gets wrong, so scores on its captions improve (grid world: mAP(neg) 0.55
    # with 0.3, 0.15 without them in a run with image-side negatives and lr 6e-3; objects anywhere:
    # 0.58 and 0.29), while perturbations, which need the image, get worse.
    own_share: float = 0.3
    # The captioner's letter weights (`PretrainConfig.letter_probe_weight` and `letter_caption_weight`):
    # 8 makes it read letters (29 % named wrongly instead of 84 %), but TLDR, at the default budget,
    # then ranks the captioner's errors far worse (bench/results/bootstrap-letters-weighted.json).
    captioner_letter_weight: float = 1.0
    seed: int = 0
    eval_scenes: int = 300
    validation_scenes: int = 100


class BootstrapMismatch(ValueError):
    """The models cached in a directory were built with other settings than a run asks for."""


def bootstrap_config(models_dir: Path, **changes) -> BootstrapConfig:
    """The settings of the models cached under `models_dir` (the defaults where none are), with `changes`.

    What a run that names only some settings means: `--reward-minutes 12` on a directory bootstrapped
    with a 20-minute captioner keeps the 20 minutes.
    """
    report_path = models_dir / REPORT
    cached = json.loads(report_path.read_text()).get("config", {}) if report_path.is_file() else {}
    known = {field.name for field in fields(BootstrapConfig)}
    return replace(BootstrapConfig(**{k: v for k, v in cached.items() if k in known}), **changes)


def models_bootstrap(
    models_dir: Path,
    config: BootstrapConfig | None = None,
    *,
    force: bool = False,
    on_progress: Progress | None = None,
) -> dict:
    """Build what is missing under `models_dir` and return the report (read back when all is cached).

    Without `config`, the cached models are used whatever they were built with (the defaults build
    them when there are none). A `config` that differs from the cached models' raises
    `BootstrapMismatch` unless `force` rebuilds them: serving the cached models would silently
    ignore the budgets asked for, and rebuilding unasked would throw away up to an hour of training.
    """
    models_dir.mkdir(parents=True, exist_ok=True)
    report_path = models_dir / REPORT
    captioner_dir, reward_dir = models_dir / CAPTIONER, models_dir / REWARD_MODEL
    if force:
        for stale in (captioner_dir, reward_dir, report_path):
            shutil.rmtree(stale, ignore_errors=True) if stale.is_dir() else stale.unlink(missing_ok=True)
    cached = (captioner_dir / "config.json").is_file() and (reward_dir / MANIFEST).is_file()
    if cached and report_path.is_file():
        report = json.loads(report_path.read_text())
        if config is not None:
            _cache_check(models_dir, report.get("config", {}), config)
        return {**report, "cached": True}
    config = config or bootstrap_config(models_dir)
    report: dict = {"config": asdict(config)}
    if not (captioner_dir / "config.json").is_file():
        report["captioner_training"] = _atomic_build(
            captioner_dir,
            lambda tmp: captioner_pretrain(
                PretrainConfig(
                    minutes=config.captioner_minutes,
                    seed=config.seed,
                    letter_probe_weight=config.captioner_letter_weight,
                    letter_caption_weight=config.captioner_letter_weight,
                ),
                tmp,
                on_progress=_stage(on_progress, "captioner"),
            ),
        )
    if not (reward_dir / MANIFEST).is_file():
        report["reward_training"] = _atomic_build(
            reward_dir, lambda tmp: reward_model_train(captioner_dir, tmp, config, on_progress=on_progress)
        )
    report["evaluation"] = bootstrap_evaluate(captioner_dir, reward_dir, n_scenes=config.eval_scenes)
    report_path.write_text(json.dumps(report, indent=2))
    return {**report, "cached": False}


def reward_model_train(
    captioner_dir: Path,
    out: Path,
    config: BootstrapConfig,
    *,
    objective: Literal["tokens", "naive"] = "tokens",
    on_progress: Progress | None = None,
) -> dict:
    """A reward model on the captioner, trained on the mixed shapeworld stream, θ calibrated, saved.

    `objective="naive"` trains the paper's binary baseline with the very same data, budget and settings.
    """
    vlm, processor = vlm_load(str(captioner_dir))
    # No LoRA dropout: every step sees fresh scenes, so there is nothing to overfit, and dropout costs
    # a fifth of a step on the built-in backbone.
    reward_config = RewardConfig(objective=objective, lora_dropout=0.0)
    model = TokenRewardModel.build(vlm, reward_config, base_model=str(captioner_dir))
    # A second, untouched copy writes the on-policy captions: LoRA is injected into `vlm` in place.
    captioner = vlm_load(str(captioner_dir))
    batches = shapeworld_batches(
        random.Random(config.seed),
        WorldConfig(),
        batch_size=config.reward_batch_size,
        captioner=captioner,
        own_share=config.own_share,
    )
    with closing(batches):
        stats = reward_train(
            model,
            processor,
            batches,
            TrainConfig(minutes=config.reward_minutes, lr=config.reward_lr, seed=config.seed),
            on_progress=_stage(on_progress, "reward model"),
        )
    validation = held_out_scenes(config.validation_scenes, seed=VALIDATION_SEED)
    own, _ = own_caption_set(validation, *captioner)
    model.config.threshold = threshold_calibrate(model, processor, [perturbation_set(validation), own])
    stats["threshold"] = model.config.threshold
    model.save(out, metrics={"training": stats})
    return stats


def bootstrap_evaluate(captioner_dir: Path, reward_dir: Path, *, n_scenes: int) -> dict:
    """Exact rates of the captioner and TLDR's metrics on held-out perturbations and own captions."""
    held_out = held_out_scenes(n_scenes)
    captioner, processor = vlm_load(str(captioner_dir))
    own, captions = own_caption_set(held_out, captioner, processor)
    model, reward_processor = TokenRewardModel.load(reward_dir)
    return {
        "captioner": captioner_rates(held_out.scenes, captions),
        "tldr_perturbations": reward_evaluate(model, reward_processor, perturbation_set(held_out)),
        "tldr_own_captions": reward_evaluate(model, reward_processor, own),
    }


def _cache_check(models_dir: Path, cached: dict, config: BootstrapConfig) -> None:
    asked = asdict(config)
    differing = [name for name in asked if name in cached and cached[name] != asked[name]]
    if differing:
        built = ", ".join(f"{name}={cached[name]}" for name in differing)
        wanted = ", ".join(f"{name}={asked[name]}" for name in differing)
        raise BootstrapMismatch(
            f"the models under {models_dir} were built with {built}, not {wanted}; rebuild them with --force "
            "(their training starts again), or leave those settings out to use them"
        )


def _atomic_build(target: Path, build: Callable[[Path], dict]) -> dict:
    """Build into a sibling temporary directory, then rename: a model directory is complete or absent."""
    tmp = target.with_name(f".{target.name}.partial")
    shutil.rmtree(tmp, ignore_errors=True)
    start = time.monotonic()
    stats = build(tmp)
    tmp.rename(target)
    return {**stats, "wall_seconds": round(time.monotonic() - start, 1)}


def _stage(on_progress: Progress | None, name: str) -> Progress | None:
    if on_progress is None:
        return None
    return lambda fraction, message: on_progress(fraction, f"{name}: {message}")
