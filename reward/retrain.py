"""Retraining TLDR on people's corrections: the reward-model half of the learning loop.

Each correction is an (original, corrected) pair of one image; the word alignment of the two texts
labels the original's words (`reward.data.correction_example`): exact labels of the real errors of
the captioner the app shows. Batches mix them with synthetic examples of the same images, so the head
keeps what it knew about the taxonomy of hard negatives: an image rendered from a shapeworld scene
gets a true caption and a parser-labelled perturbation of it, any other image its corrected caption
(taken as true) and a lexicon perturbation of that.

A deterministic slice of the corrections (by a hash of each correction's key) never trains: part of it
calibrates θ, the rest is the held-out set on which the candidate AND the model it would replace are
both evaluated, so the promotion gate compares them on the same captions. The same correction always
falls in the same slice, in every retraining, so a correction once held out never leaks into training.

Knows no Django: the app turns its rows into `CorrectionSample`s and decides on promotion.
"""

from __future__ import annotations

import hashlib
import math
import random
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from PIL import Image

from reward.data import LabelledCaption, correction_example, free_text_examples, scene_examples
from shapeworld.scene import Scene

Progress = Callable[[float, str], None]

# Fewer calibration captions than this would pick θ from noise: the training corrections stand in.
MIN_CALIBRATION = 5


@dataclass(frozen=True)
class CorrectionSample:
    """One correction as training data: `key` (the correction's id) decides its slice; `scene` is the
    shapeworld scene the image was rendered from, where it was."""

    key: int
    image: Image.Image
    original: str
    corrected: str
    scene: Scene | None = None


@dataclass
class RetrainConfig:
    """A retraining run: its budget (`minutes` and/or `max_steps`), its data mix and its starting point.

    `from_base` trains a fresh LoRA and head on the base captioner instead of continuing the active
    reward model (after the captioner changed, or to leave a model that drifted behind).
    `epochs` caps the passes over the training corrections whatever the minutes allow: a few hundred
    corrections seen sixty times over (two minutes on a CPU) made the built-in model worse on held-out
    corrections (mAP(neg) 0.52 → 0.42), three passes made it better (0.52 → 0.57).
    """

    minutes: float | None = 10.0
    max_steps: int | None = None
    lr: float = 2e-4
    epochs: float = 3.0
    batch_size: int = 16
    # Share of every batch made of synthetic examples of the corrections' images (the rest: corrections).
    synthetic_share: float = 0.5
    from_base: bool = False
    seed: int = 0
    held_out_share: float = 0.2
    calibration_share: float = 0.1
    min_held_out: int = 3

    def __post_init__(self) -> None:
        if self.minutes is None and self.max_steps is None:
            raise ValueError("a retraining run needs a budget: set minutes, max_steps or both")
        if not 0.0 <= self.synthetic_share < 1.0:
            raise ValueError(f"synthetic_share must be in [0, 1), not {self.synthetic_share}")


@dataclass(frozen=True)
class CorrectionSplit:
    """Keys of the corrections that train, calibrate θ, and are held out for the gate's evaluation."""

    train: list[int]
    calibration: list[int]
    held_out: list[int]


@dataclass
class RetrainResult:
    """What a retraining run did: the split's sizes, training statistics, θ, and the held-out reports
    (`reward.evaluate.reward_evaluate`'s "overall") of the candidate and of the model it would replace."""

    split: dict[str, int]
    training: dict
    threshold: float
    calibrated_on: str
    candidate: dict
    active: dict | None = None


class TooFewCorrections(ValueError):
    """Not enough corrections for a held-out slice and something to train on; the message says how many."""


def slice_position(key: int, *, salt: str = "tldr-held-out") -> float:
    """Where a key falls in [0, 1): a hash, so the slice of a correction never depends on the others."""
    digest = hashlib.sha256(f"{salt}:{key}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def keys_held_out(keys: list[int], *, share: float, minimum: int, salt: str = "tldr-held-out") -> list[int]:
    """The keys whose hash falls below `share`, topped up to `minimum` with the keys nearest the slice.

    The same key is held out in every call, whatever other keys come and go (top-ups aside), so what
    was once used to judge a model is never trained on later.
    """
    ordered = sorted(set(keys), key=lambda key: slice_position(key, salt=salt))
    held_out = [key for key in ordered if slice_position(key, salt=salt) < share]
    return held_out if len(held_out) >= minimum else ordered[:minimum]


def corrections_split(
    keys: list[int], *, held_out_share: float = 0.2, calibration_share: float = 0.1, min_held_out: int = 3
) -> CorrectionSplit:
    """Split keys by their hash: below `held_out_share` held out, the next `calibration_share` calibrate.

    When the hash holds out fewer than `min_held_out`, the keys nearest the slice are added, so a
    small project still has a few captions to judge a candidate on.
    """
    ordered = sorted(set(keys), key=slice_position)
    if len(ordered) <= min_held_out:
        raise TooFewCorrections(
            f"{len(ordered)} corrections: at least {min_held_out + 1} are needed "
            f"({min_held_out} held out for evaluation and some to train on)"
        )
    held_out = keys_held_out(ordered, share=held_out_share, minimum=min_held_out)
    judging = frozenset(held_out)
    rest = [key for key in ordered if key not in judging]
    calibration = [key for key in rest if slice_position(key) < held_out_share + calibration_share]
    train = rest[len(calibration) :]  # `rest` is in hash order: the calibration keys come first
    if not train:
        train, calibration = calibration, []
    return CorrectionSplit(train=train, calibration=calibration, held_out=held_out)


def synthetic_examples(sample: CorrectionSample, rng: random.Random) -> list[LabelledCaption]:
    """A true caption of the correction's image and a hard negative of it, labelled exactly.

    With a scene: a caption from the grammar and a taxonomy perturbation, labelled by the parser.
    Without one: the corrected caption, which a person vouched for, and a lexicon perturbation of it.
    """
    if sample.scene is not None:
        return scene_examples(sample.scene, sample.image, rng)
    return free_text_examples(sample.image, sample.corrected, rng)


def retrain_batches(
    samples: list[CorrectionSample], rng: random.Random, *, batch_size: int, synthetic_share: float
) -> Iterator[list[LabelledCaption]]:
    """Endless shuffled batches: corrections (epoch by epoch) beside fresh synthetic examples of their images."""
    corrections = [correction_example(s.image, s.original, s.corrected) for s in samples]
    synthetic_wanted = round(batch_size * synthetic_share)
    corrections_wanted = min(batch_size - synthetic_wanted, len(corrections))
    order: list[LabelledCaption] = []
    synthetic: list[LabelledCaption] = []
    while True:
        if len(order) < corrections_wanted:
            epoch = list(corrections)
            rng.shuffle(epoch)
            order += epoch
        while len(synthetic) < synthetic_wanted:
            synthetic += synthetic_examples(rng.choice(samples), rng)
        batch = order[:corrections_wanted] + synthetic[:synthetic_wanted]
        order, synthetic = order[corrections_wanted:], synthetic[synthetic_wanted:]
        rng.shuffle(batch)
        yield batch


def retrain_steps(config: RetrainConfig, train_corrections: int) -> int:
    """The steps of `config.epochs` passes over the training corrections, or `max_steps` if that is fewer."""
    per_batch = max(1, min(config.batch_size - round(config.batch_size * config.synthetic_share), train_corrections))
    steps = max(1, math.ceil(config.epochs * train_corrections / per_batch))
    return min(steps, config.max_steps) if config.max_steps else steps


def reward_retrain(
    *,
    samples: list[CorrectionSample],
    out_dir: Path,
    config: RetrainConfig,
    active_dir: Path | None,
    base_model: str | None = None,
    backbone: str | None = None,
    on_progress: Progress | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> RetrainResult:
    """Train a candidate reward model on the corrections, calibrate θ, save it to `out_dir`, and evaluate
    it and the active model (`active_dir`, if any) on the held-out corrections.

    The candidate continues the active model unless `config.from_base` (or there is none); then it is a
    fresh LoRA and head on `base_model`, which must be given. `backbone` replaces the base model named
    in a saved reward model's manifest (TLDR_BACKBONE). The active model is evaluated first, so a
    missing or broken active model fails the run before any training is spent. `on_progress` may
    raise to abort the run.
    """
    from reward.calibrate import threshold_calibrate
    from reward.evaluate import reward_evaluate
    from reward.model import RewardConfig, TokenRewardModel
    from reward.train import TrainConfig, reward_train
    from reward.vlm import default_device, vlm_load

    if (config.from_base or active_dir is None) and not base_model:
        raise ValueError("a fresh reward model needs base_model: the captioner (or backbone) to build it on")
    report = on_progress or (lambda fraction, step: None)
    device = default_device()
    by_key = {sample.key: sample for sample in samples}
    split = corrections_split(
        list(by_key),
        held_out_share=config.held_out_share,
        calibration_share=config.calibration_share,
        min_held_out=config.min_held_out,
    )
    held_out = [_correction_labelled(by_key[key]) for key in split.held_out]
    result_active = None
    if active_dir is not None:
        report(0.0, f"evaluating the active reward model on {len(held_out)} held-out corrections")
        active, processor = TokenRewardModel.load(active_dir, base_model_override=backbone)
        result_active = reward_evaluate(active.to(device), processor, held_out)["overall"]
        del active

    report(0.05, "loading the model to train")
    if config.from_base or active_dir is None:
        vlm, processor = vlm_load(base_model)
        model = TokenRewardModel.build(vlm, RewardConfig(lora_dropout=0.0), base_model=base_model)
    else:
        model, processor = TokenRewardModel.load(active_dir, base_model_override=backbone, trainable=True)
    model.to(device)
    batches = retrain_batches(
        [by_key[key] for key in split.train],
        random.Random(config.seed),
        batch_size=config.batch_size,
        synthetic_share=config.synthetic_share,
    )
    training = reward_train(
        model,
        processor,
        batches,
        TrainConfig(
            minutes=config.minutes, max_steps=retrain_steps(config, len(split.train)), lr=config.lr, seed=config.seed
        ),
        on_progress=lambda fraction, step: report(0.05 + 0.8 * fraction, f"training: {step}"),
        should_stop=should_stop,
    )

    report(0.85, "calibrating the threshold")
    calibrated_on = "calibration corrections"
    calibration_keys = split.calibration
    if len(calibration_keys) < MIN_CALIBRATION:
        calibrated_on = "training corrections (too few calibration corrections)"
        calibration_keys = split.train
    model.config.threshold = threshold_calibrate(
        model, processor, [calibration_examples([by_key[key] for key in calibration_keys], seed=config.seed)]
    )

    report(0.9, f"evaluating the candidate on {len(held_out)} held-out corrections")
    candidate = reward_evaluate(model, processor, held_out)["overall"]
    model.save(out_dir, metrics={"training": training, "held_out": candidate})
    return RetrainResult(
        split={"train": len(split.train), "calibration": len(split.calibration), "held_out": len(split.held_out)},
        training=training,
        threshold=model.config.threshold,
        calibrated_on=calibrated_on,
        candidate=candidate,
        active=result_active,
    )


def calibration_examples(samples: list[CorrectionSample], *, seed: int) -> list[LabelledCaption]:
    """The corrections and a true caption and a hard negative of each of their images.

    People mostly correct captions that were wrong: corrections alone would make "every caption is
    bad" the most accurate answer, and θ would flag every word. The true captions balance them.
    """
    rng = random.Random(seed + 1)
    return [example for s in samples for example in (_correction_labelled(s), *synthetic_examples(s, rng))]


def _correction_labelled(sample: CorrectionSample) -> LabelledCaption:
    return correction_example(sample.image, sample.original, sample.corrected)


@dataclass(frozen=True)
class GateVerdict:
    """Whether a candidate replaces the active model, and why, in numbers a person can check."""

    promote: bool
    reason: str
    judged_by: str


def reward_gate(*, candidate: dict, active: dict | None) -> GateVerdict:
    """TLDR's gate: the candidate's held-out mAP(neg) must be at least the active model's.

    mAP(neg) (average precision of finding the bad words) needs no threshold, so the two models are
    compared on ranking alone; θ is calibrated separately. Without an active model there is nothing
    to lose; an undefined mAP (no changed word among the held-out corrections) promotes nothing.
    """
    mine = candidate.get("mAP_neg")
    if active is None:
        return GateVerdict(True, "no active reward model to compare with: the candidate becomes active", "mAP_neg")
    theirs = active.get("mAP_neg")
    if not finite(mine) or not finite(theirs):
        return GateVerdict(
            False,
            "held-out mAP(neg) is undefined (no corrected word among the held-out corrections): kept as a candidate",
            "mAP_neg",
        )
    if mine >= theirs:
        return GateVerdict(True, f"held-out mAP(neg) {mine:.4f} ≥ the active model's {theirs:.4f}: promoted", "mAP_neg")
    return GateVerdict(
        False, f"held-out mAP(neg) {mine:.4f} < the active model's {theirs:.4f}: kept as a candidate", "mAP_neg"
    )


def finite(value: object) -> bool:
    """A metric that can be compared: a number, not None and not NaN (an undefined average precision)."""
    return isinstance(value, int | float) and math.isfinite(value)
