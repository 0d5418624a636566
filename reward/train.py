"""Training TLDR: BCE on every response token (or on the last one, for the naive baseline).

The loop is budgeted in wall-clock minutes, with the learning rate on a cosine over the budget, so
the first-run bootstrap finishes in the time it promises on any machine; `max_steps` bounds it
instead where a test or a benchmark wants a fixed amount of work.
"""

from __future__ import annotations

import math
import random
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import torch
from transformers import PreTrainedModel, ProcessorMixin

from reward.data import LabelledCaption, own_caption_examples, shapeworld_stream
from reward.model import TokenRewardModel, reward_loss
from reward.tokens import encode_responses, token_labels_from_words
from reward.vlm import CAPTION_PROMPT, captions_generate
from shapeworld.background import background_iterate, torch_threads, training_threads
from shapeworld.render import scene_render
from shapeworld.scene import WorldConfig, scene_sample

Progress = Callable[[float, str], None]


@dataclass
class TrainConfig:
    """How long and how hard to train; `minutes` and `max_steps` both bound the run (either may be None)."""

    minutes: float | None = 3.0
    max_steps: int | None = None
    lr: float = 1e-3
    warmup_steps: int = 30
    weight_decay: float = 0.0
    grad_clip: float = 1.0
    seed: int = 0
    instruction: str = CAPTION_PROMPT
    # Forward passes in bfloat16 autocast on CPU (weights and optimiser stay float32), as the captioner
    # trains where the CPU allows (`shapeworld.pretrain.PretrainConfig.bf16_autocast`). Off: at the
    # bootstrap's 3 minutes on AVX-512-BF16 it made 762 steps instead of 653 but scored 0.910 instead
    # of 0.923 on held-out perturbations and 0.596 instead of 0.566 on own captions (one seed,
    # bench/reward_variants.py --bf16): no clear gain yet.
    bf16_autocast: bool = False
    # Intra-op threads; None: every core. The data process beside the loop needs little of one
    # (a synthetic example costs 0.9 ms, about 20 ms a step), so it does not stall the threads. On a
    # 2-core AVX2 CPU a step of the bootstrap's reward model takes 0.22 s with 2 threads, 0.34 s with 1.
    torch_threads: int | None = None

    def __post_init__(self) -> None:
        if self.minutes is None and self.max_steps is None:
            raise ValueError("a training run needs a budget: set minutes, max_steps or both")


def learning_rate(step: int, fraction_done: float, config: TrainConfig) -> float:
    """Linear warm-up, then a cosine to zero over the budget (time or steps, whichever runs out first)."""
    if step < config.warmup_steps:
        return config.lr * (step + 1) / config.warmup_steps
    return config.lr * 0.5 * (1.0 + math.cos(math.pi * min(fraction_done, 1.0)))


def batch_loss(
    model: TokenRewardModel, processor: ProcessorMixin, batch: list[LabelledCaption], instruction: str
) -> torch.Tensor:
    """The reward loss of one batch of labelled captions (token labels from the word spans)."""
    encoding = encode_responses(
        processor,
        [e.image for e in batch],
        [e.caption for e in batch],
        instruction=instruction,
        read_twice=model.config.reads_twice,
    )
    labels = [token_labels_from_words(o, list(e.bad_spans)) for o, e in zip(encoding.offsets, batch, strict=True)]
    token_bad = encoding.token_values([[float(b) for b in row] for row in labels])
    logits = model(encoding.model_inputs, encoding.response_mask, encoding.first_reading_mask)
    return reward_loss(logits, token_bad, encoding.response_mask, model.config.objective, model.config.bad_weight)


def reward_train(
    model: TokenRewardModel,
    processor: ProcessorMixin,
    batches: Iterator[list[LabelledCaption]],
    config: TrainConfig,
    *,
    on_progress: Progress | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> dict:
    """Train `model` in place on `batches` until the budget is spent; returns the run's statistics.

    `should_stop` is asked before every step: a job that is cancelled or near its time limit ends the
    run early and keeps the model trained so far (the statistics say it was stopped).
    """
    with torch_threads(training_threads(config.torch_threads, busy_data_process=False)):
        return _train(model, processor, batches, config, on_progress, should_stop)


def _train(
    model: TokenRewardModel,
    processor: ProcessorMixin,
    batches: Iterator[list[LabelledCaption]],
    config: TrainConfig,
    on_progress: Progress | None,
    should_stop: Callable[[], bool] | None,
) -> dict:
    torch.manual_seed(config.seed)
    parameters = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(parameters, lr=config.lr, betas=(0.9, 0.98), weight_decay=config.weight_decay)
    budget_s = config.minutes * 60 if config.minutes is not None else math.inf
    model.train()
    start = time.monotonic()
    step, seen, recent, stopped = 0, 0, [], False
    while True:
        elapsed = time.monotonic() - start
        fraction = max(elapsed / budget_s, step / config.max_steps if config.max_steps else 0.0)
        if fraction >= 1.0:
            break
        if should_stop is not None and should_stop():
            stopped = True
            break
        batch = next(batches)
        for group in optimizer.param_groups:
            group["lr"] = learning_rate(step, fraction, config)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=config.bf16_autocast):
            loss = batch_loss(model, processor, batch, config.instruction)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(parameters, config.grad_clip)
        optimizer.step()
        step += 1
        seen += len(batch)
        recent = [*recent[-49:], loss.item()]
        if on_progress is not None and step % 10 == 0:
            on_progress(min(fraction, 1.0), f"step {step} loss {sum(recent) / len(recent):.4f}")
    model.eval()
    seconds = time.monotonic() - start
    return {
        "steps": step,
        "captions_seen": seen,
        "seconds": round(seconds, 1),
        "captions_per_second": round(seen / max(seconds, 1e-9), 1),
        "final_loss": round(sum(recent) / max(len(recent), 1), 5),
        "stopped_early": stopped,
        "threads": torch.get_num_threads(),
    }


def synthetic_pools(
    seed: int,
    world: WorldConfig,
    size: int,
    scenes_together: bool = False,
    image_side_share: float = 0.0,
    reflection_share: float = 0.0,
) -> Iterator[list[LabelledCaption]]:
    """Endless shuffled pools of at least `size` true captions and hard negatives; the seed decides all.

    `scenes_together` shuffles whole scenes instead of captions, so a scene's true caption and its
    negatives sit side by side and mostly land in the same batch: the two differ only in the changed
    words, on the same image, which leaves the image as the only way to tell them apart.
    `image_side_share`, `reflection_share`: see `shapeworld_stream`.
    """
    rng = random.Random(seed)
    stream = shapeworld_stream(rng, world, image_side_share=image_side_share, reflection_share=reflection_share)
    while True:
        scenes: list[list[LabelledCaption]] = []
        while sum(map(len, scenes)) < size:
            scenes.append(next(stream)[2])
        if scenes_together:
            rng.shuffle(scenes)
            yield [example for scene in scenes for example in scene]
        else:
            pool = [example for scene in scenes for example in scene]
            rng.shuffle(pool)
            yield pool


def shapeworld_batches(
    rng: random.Random,
    world: WorldConfig,
    *,
    batch_size: int,
    captioner: tuple[PreTrainedModel, ProcessorMixin] | None = None,
    own_share: float = 0.4,
    own_chunk: int = 256,
    data_process: bool = True,
    scenes_together: bool = False,
    image_side_share: float = 0.0,
    reflection_share: float = 0.0,
) -> Iterator[list[LabelledCaption]]:
    """Endless shuffled batches: true captions, hard negatives and (with a captioner) its own captions.

    `own_share` is the share of each batch's examples that are the captioner's own captions. Own
    captions are made in chunks for fresh scenes (generation is batched) and labelled by the parser:
    the real errors of the policy the reward model will judge. Half a chunk is greedy, the captions the
    app will actually show; half is sampled at temperature 1, for the variety of errors. The synthetic
    examples are made by a background process (`data_process`), which roughly doubles the steps a
    CPU fits into a budget; closing the generator stops that process. `scenes_together`: see
    `synthetic_pools`; `image_side_share`, `reflection_share`: see `shapeworld_stream` (bench/reward_variants.py
    measures them).
    """
    own_wanted = round(own_share * batch_size) if captioner is not None else 0
    size = batch_size - own_wanted
    own: list[LabelledCaption] = []
    synthetic: list[LabelledCaption] = []
    seed = rng.randrange(2**31)
    pool_args = (seed, world, size * 8, scenes_together, image_side_share, reflection_share)
    with background_iterate(synthetic_pools, *pool_args, enabled=data_process) as pools:
        while True:
            if len(synthetic) < size:
                synthetic.extend(next(pools))
            if len(own) < own_wanted:
                own.extend(_own_chunk(rng, world, captioner, max(own_chunk, own_wanted)))
            batch = synthetic[:size] + own[:own_wanted]
            synthetic, own = synthetic[size:], own[own_wanted:]
            rng.shuffle(batch)
            yield batch


def _own_chunk(
    rng: random.Random, world: WorldConfig, captioner: tuple[PreTrainedModel, ProcessorMixin], size: int
) -> list[LabelledCaption]:
    model, processor = captioner
    scenes = [scene_sample(rng, world) for _ in range(size)]
    images = [scene_render(scene, world.image_size) for scene in scenes]
    half = size // 2
    captions = captions_generate(model, processor, images[:half], batch_size=128)
    captions += captions_generate(
        model, processor, images[half:], do_sample=True, seed=rng.randrange(2**31), batch_size=128
    )
    examples = own_caption_examples(scenes, images, captions)
    rng.shuffle(examples)
    return examples
