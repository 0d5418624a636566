"""Training the built-in captioner from scratch on an endless stream of fresh scenes, on a CPU budget.

What makes minutes enough (each measured in `bench/captioner_quality.py`):
- The world lays its objects out in cells of one patch each (`WorldConfig.grid`): the vision
  tower learns shapes from whole objects, not from pieces cut anywhere by patch borders.
- Targets are the canonical captions: one fixed phrasing, objects named left to right.
- Dense auxiliary supervision: a linear probe on every patch token of the vision tower predicts
  what lies under that patch (which group in left-to-right order, its shape, colour, size, count
  and letter), computed exactly from the scene geometry. It teaches the vision tower to see far
  faster than the caption loss alone; only the LLaVA model is saved, the probe is thrown away.
- The budget is wall-clock time, not steps: the learning rate follows a cosine over the elapsed
  seconds, so the run ends on time on any machine (a faster machine just takes more steps).
- Part of every batch is the self-correction task (TLDR §5.3): a perturbed caption plus the words
  to look at again, answered with the true caption.

Determinism: the data stream and the initial weights depend only on the seed; how many steps fit
into the budget depends on the machine's speed, so two runs agree step for step but may stop at
different steps.
"""

from __future__ import annotations

import json
import math
import random
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np
import torch
from torch import nn
from tqdm import tqdm
from transformers import LlavaForConditionalGeneration, LlavaProcessor, PreTrainedTokenizerBase

from shapeworld.background import background_iterate, torch_threads, training_threads
from shapeworld.grammar import caption_words, caption_write
from shapeworld.parser import RELATION_WORDS, word_kind
from shapeworld.perturb import caption_perturb_any
from shapeworld.render import scene_render
from shapeworld.scene import (
    COLOURS,
    LETTERS,
    RADIUS,
    RELATIONS,
    SHAPES,
    SIZES,
    Scene,
    WorldConfig,
    scene_relation,
    scene_sample,
)
from shapeworld.tiny_vlm import (
    CAPTION_INSTRUCTION,
    PIXEL_MEAN,
    PIXEL_STD,
    WHOLE_CAPTION,
    TinyVlmConfig,
    correction_instruction,
    prompt_ids,
    tiny_vlm_build,
)

IGNORE = -100
# What the probe predicts for every patch; class 0 is "background" for each of them.
PROBE_CLASSES = {
    "group": None,  # 1 + index of the group in left-to-right order; sized from the world config
    "shape": 1 + len(SHAPES),
    "colour": 1 + len(COLOURS),
    "size": 1 + len(SIZES),
    "count": None,  # 1 + max count; sized from the world config
    "letter": 2 + len(LETTERS),  # background, no letter, then the letters
    "relation": 2 + len(RELATIONS),  # background, last group, then its relation to the next group
}
# Sample points per patch side for the coverage that decides a patch's label.
_COVERAGE_GRID = 4
# A patch is labelled with a group when at least this share of it lies inside one of its objects.
_COVERAGE_MIN = 0.1

ProgressCallback = Callable[[float, str], None]


@dataclass(frozen=True)
class PretrainConfig:
    """Everything a pretraining run depends on; `minutes` is the whole run's wall-clock budget."""

    minutes: float = 6.0
    # A step budget instead of the clock, for comparisons that must not depend on machine load;
    # None (the default) trains for `minutes`.
    steps: int | None = None
    seed: int = 0
    # 32, not 64: at a fixed budget the step count decides whether the decoder learns to bind words
    # to objects. On a 2-core CPU without AVX-512 (6 minutes, bench/captioner_quality.py): batch 64
    # made 510 steps and got 27-31 % of content words wrong, 32 made 1,000 steps and got 18.5 %,
    # 16 made 1,900 noisy steps and got colours wrong (33 %).
    batch_size: int = 32
    lr: float = 2e-3
    min_lr_ratio: float = 0.05
    warmup_steps: int = 50
    weight_decay: float = 0.01
    grad_clip: float = 1.0
    probe_weight: float = 1.0
    # The relation head's weight inside the probe loss (the other heads weigh 1). Relations are what
    # the captioner gets wrong most (above and below near chance), and a fresh linear probe on the
    # trained tower reads them on only ~80 % of patches. Weight 4, 6-minute runs
    # (bench/captioner_quality.py --set relation_probe_weight=4): 11.6 % of content words wrong at
    # batch 64 on a fast machine (defaults: 9.4-14.2 %); 16.1 % and, with seed 1, 27.3 % at batch 32
    # on a slow one (defaults: 18.5-25.3 %). No gain beyond the spread, so the default stays 1.
    relation_probe_weight: float = 1.0
    # Letters are rare: about one patch in a hundred shows one, and one answer token in a hundred
    # names one. Unweighted, the probe's letter head learns "no letter" and the decoder the letters'
    # frequencies. These weigh the patches that bear a letter in the letter head's loss and the letter
    # tokens in the caption loss (everything else weighs 1). bench/letter_reading.py on 6-minute
    # captioners (a linear probe on the tower / the decoder teacher-forced / letters named wrongly in
    # captions; chance reads 12.5 %): weights 1: 39 % / 20 % / 84 %; probe 8 alone: 80 % / 16 % / 86 %
    # (the decoder never learns to use what the tower reads); both 8: 81 % / 68 % / 29 % (seed 1:
    # 81 % / 65 % / 37 %), content words as often right; both 16: 86 % / 78 % / 25 %, but 5.3 % of
    # content words wrong against 2.9 %. They stay 1 by default: TLDR trained for the bootstrap's
    # 3 minutes on a captioner that reads letters ranks its errors far worse (README, "Letters").
    letter_probe_weight: float = 1.0
    letter_caption_weight: float = 1.0
    # The weight of a relation's direction word (left, right, above, below) in the caption loss. One
    # answer token in twenty says a direction, and on a slow CPU the 6-minute captioner still names
    # 20-55 % of relations wrongly. Weight 4 on a 2-core AVX2 CPU (seeds 0 and 1, 6 minutes, paired
    # with the default, bench/results/captioner_relation_weight.json): relations 29 % and 38 % wrong
    # instead of 55 % and 45 %, but content words 20.5 % and 27.2 % against 26.1 % and 14.3 %: runs
    # that far apart say nothing yet, so it stays 1.
    relation_caption_weight: float = 1.0
    # Share of the budget spent on the vision tower and probe alone before captioning starts: a
    # vision step costs a fraction of a full one, and captions are learnt faster from features
    # that already tell shapes apart.
    probe_warmup_share: float = 0.0
    probe_warmup_batch_size: int = 16
    correction_share: float = 0.2
    # Of the correction examples: how often one true word is flagged too, and how often the caption
    # given is already true (the answer then repeats it: a flagged word is a hint, not a verdict).
    correction_true_flag: float = 0.3
    correction_untouched: float = 0.1
    # Of the correction examples: how often no word is named at all (a whole-caption flag, all a
    # binary reward model gives), so the captioner must find the error itself.
    correction_whole: float = 0.25
    # Batches are cut from a pool of this many, sorted by length: far less padding to compute on.
    length_pool: int = 8
    # Each pool is served this many times, cut into other batches each time. Why: on two cores the
    # training step and the drawing of its examples compete for the CPU; served twice, an example
    # costs half the drawing, and the training takes both cores. Measured on a 2-core AVX2 CPU
    # (150 steps): 110 samples/s with 1 thread beside a data process making fresh examples, 96.6
    # with 2 threads beside it, 144.5 with 2 threads and each example served twice.
    example_reuse: int = 2
    # Make the data in a background process (see `pools_open`). Threads None: every core, the data
    # process's too, since with `example_reuse` it needs little of one (see there).
    data_process: bool = True
    torch_threads: int | None = None
    # Seconds kept back from the budget for saving the model, so the whole call ends on time.
    save_reserve_s: float = 3.0
    # Forward passes in bfloat16 autocast (weights and optimiser stay float32); None: where the CPU
    # multiplies bfloat16 natively (`cpu_has_native_bf16`). There a step is 1.3x faster
    # (bench/train_step_precision.py), so the budget makes a fifth more steps, and the 6-minute
    # captioner got 4.0 % and 4.7 % of content words wrong against 6.8 % and 14.5 % in float32 (seeds 0
    # and 1, bench/results/captioner_quality_bf16.jsonl). Elsewhere bfloat16 is emulated and slower.
    bf16_autocast: bool | None = None
    model: TinyVlmConfig = field(default_factory=TinyVlmConfig)
    world: WorldConfig = field(default_factory=WorldConfig)


# ----------------------------------------------------------------------------- patch targets


def probe_class_counts(world: WorldConfig) -> dict[str, int]:
    """Number of classes of each probe head for scenes drawn from `world`."""
    return {
        name: classes if classes is not None else 1 + (world.max_groups if name == "group" else world.max_count)
        for name, classes in PROBE_CLASSES.items()
    }


def patch_targets(scene: Scene, grid: int) -> np.ndarray:
    """[grid², heads] class ids per patch (row-major, as CLIP orders patches) for the probe heads.

    A patch belongs to the group covering most of it, objects approximated by discs of their
    radius: exact enough to say what is under a patch, and shape-agnostic so it stays cheap.
    """
    points = (np.arange(grid * _COVERAGE_GRID) + 0.5) / (grid * _COVERAGE_GRID)
    ys, xs = np.meshgrid(points, points, indexing="ij")  # sample points in image units
    coverage = np.zeros((len(scene.groups), grid, grid))
    for g, group in enumerate(scene.groups):
        inside = np.zeros_like(xs, dtype=bool)
        for x, y in group.positions:
            inside |= (xs - x) ** 2 + (ys - y) ** 2 <= RADIUS[group.size] ** 2
        coverage[g] = inside.reshape(grid, _COVERAGE_GRID, grid, _COVERAGE_GRID).mean(axis=(1, 3))
    coverage = coverage.reshape(len(scene.groups), grid * grid)
    owner = coverage.argmax(axis=0)
    covered = coverage.max(axis=0) >= _COVERAGE_MIN
    rows = np.array([_group_classes(scene, g) for g in range(len(scene.groups))])  # [G, heads]
    targets = rows[owner]
    targets[~covered] = 0
    return targets


def _group_classes(scene: Scene, index: int) -> list[int]:
    group = scene.groups[index]
    letter = 1 if group.letter is None else 2 + LETTERS.index(group.letter)
    following = scene.groups[index + 1] if index + 1 < len(scene.groups) else None
    relation = None if following is None else scene_relation(group, following)
    return [
        1 + index,
        1 + SHAPES.index(group.shape),
        1 + COLOURS.index(group.colour),
        1 + SIZES.index(group.size),
        group.count,
        letter,
        1 if relation is None else 2 + RELATIONS.index(relation),
    ]


# ----------------------------------------------------------------------------- examples


@dataclass(frozen=True)
class Example:
    """One training sequence: pixels, prompt + answer ids, and the patch targets of the probe."""

    pixels: np.ndarray  # [S, S, 3] uint8, as rendered (4x smaller to send between processes)
    input_ids: list[int]
    answer_start: int  # tokens from here on (the answer and its eos) carry the loss
    patch_targets: np.ndarray  # [patches, heads]


class PromptCoder:
    """Turns instructions and answers into ids by word lookup, matching the processor's output.

    Calling the chat template for every example would cost more than the rest of the data
    pipeline; the template is rendered once around a marker and the words are looked up.
    """

    def __init__(self, processor: LlavaProcessor) -> None:
        self.vocab = processor.tokenizer.get_vocab()
        self.eos = processor.tokenizer.eos_token_id
        marker = self.vocab[WHOLE_CAPTION]
        ids = prompt_ids(processor, WHOLE_CAPTION)
        cut = ids.index(marker)
        self.head, self.tail = ids[:cut], ids[cut + 1 :]

    def words(self, text: str) -> list[int]:
        """Ids of the words of `text` (the same split as the tokenizer's pre-tokenizer)."""
        return [self.vocab[word] for word, _, _ in caption_words(text)]

    def sequence(self, instruction: str, answer: str) -> tuple[list[int], int]:
        """Prompt + answer + eos ids, and where the answer starts."""
        prompt = self.head + self.words(instruction) + self.tail
        return prompt + self.words(answer) + [self.eos], len(prompt)


def correction_input(scene: Scene, caption: str, rng: random.Random, config: PretrainConfig) -> tuple[str, list[str]]:
    """A caption to fix and the words flagged in it, drawn like a detector's output.

    Mostly a perturbed caption with its hallucinated words flagged; sometimes one true content
    word is flagged as well, sometimes the caption is true and only a true word is flagged, and
    sometimes a perturbed caption comes with no word flagged (the whole caption is in doubt).
    """
    perturbation = None
    if rng.random() >= config.correction_untouched:
        perturbation = caption_perturb_any(scene, caption, rng, n_changes=rng.choice([1, 2]))
    if perturbation is not None and rng.random() < config.correction_whole:
        return perturbation.caption, []
    if perturbation is None:
        shown, flagged = caption, []
        true_words = [w for w, _, _ in caption_words(caption) if word_kind(w) not in ("function", "unknown")]
        candidates = true_words
    else:
        shown = perturbation.caption
        flagged = list(dict.fromkeys(w.text for w in perturbation.words if w.label == "hallucinated"))
        candidates = [w.text for w in perturbation.words if w.label == "true" and w.text not in flagged]
    if candidates and (not flagged or rng.random() < config.correction_true_flag):
        flagged.insert(rng.randrange(len(flagged) + 1), rng.choice(candidates))
    return shown, flagged


def example_make(rng: random.Random, coder: PromptCoder, config: PretrainConfig) -> Example:
    """A fresh scene, rendered, with the canonical caption as answer to one of the two instructions."""
    scene = scene_sample(rng, config.world)
    side = config.model.image_size
    image = np.asarray(scene_render(scene, size=side), dtype=np.uint8)
    caption = caption_write(scene)
    if rng.random() < config.correction_share:
        shown, flagged = correction_input(scene, caption, rng, config)
        instruction = correction_instruction(shown, flagged)
    else:
        instruction = CAPTION_INSTRUCTION
    ids, answer_start = coder.sequence(instruction, caption)
    grid = side // config.model.patch_size
    return Example(image, ids, answer_start, patch_targets(scene, grid))


def batch_collate(examples: list[Example], pad_id: int) -> dict[str, torch.Tensor]:
    """Right-padded tensors; the loss sees only answer tokens, never prompt or padding.

    Pixels are normalised exactly as the processor does it (a test checks), so the model trains on
    what it will be given.
    """
    length = max(len(e.input_ids) for e in examples)
    input_ids = torch.full((len(examples), length), pad_id, dtype=torch.long)
    labels = torch.full((len(examples), length), IGNORE, dtype=torch.long)
    attention_mask = torch.zeros((len(examples), length), dtype=torch.long)
    for row, example in enumerate(examples):
        n = len(example.input_ids)
        input_ids[row, :n] = torch.tensor(example.input_ids)
        labels[row, example.answer_start : n] = input_ids[row, example.answer_start : n]
        attention_mask[row, :n] = 1
    return {
        "pixel_values": pixels_normalise(np.stack([e.pixels for e in examples])),
        "input_ids": input_ids,
        "attention_mask": attention_mask,
        "labels": labels,
        "patch_targets": torch.from_numpy(np.stack([e.patch_targets for e in examples])).long(),
    }


def pixels_normalise(images: np.ndarray) -> torch.Tensor:
    """[B, S, S, 3] uint8 -> [B, 3, S, S] float, scaled as the captioner's processor scales."""
    pixels = torch.from_numpy(images).permute(0, 3, 1, 2).float() / 255.0
    return (pixels - PIXEL_MEAN) / PIXEL_STD


def example_pools(coder: PromptCoder, config: PretrainConfig) -> Iterator[list[Example]]:
    """Endless pools of `length_pool` batches' worth of fresh examples; the seed decides them all."""
    rng = random.Random(f"captioner-pretrain:{config.seed}")
    while True:
        yield [example_make(rng, coder, config) for _ in range(config.batch_size * config.length_pool)]


def batches_from_pools(
    pools: Iterator[list[Example]], config: PretrainConfig, pad_id: int
) -> Iterator[dict[str, torch.Tensor]]:
    """Batches of similar length: a pool sorted by length is cut into batches, served shuffled.

    Each pool is served `config.example_reuse` times; it is shuffled before each (stable) sort, so
    examples of equal length meet other batch mates every time.
    """
    rng = random.Random(f"captioner-batches:{config.seed}")
    size = config.batch_size
    for pool in pools:
        for _ in range(config.example_reuse):
            examples = rng.sample(pool, len(pool))
            examples.sort(key=lambda e: len(e.input_ids))
            batches = [examples[k : k + size] for k in range(0, len(examples), size)]
            rng.shuffle(batches)
            for batch in batches:
                yield batch_collate(batch, pad_id)


@contextmanager
def pools_open(coder: PromptCoder, config: PretrainConfig) -> Iterator[Iterator[list[Example]]]:
    """The example pools, made by a background process when `data_process` is on (same data either way)."""
    with background_iterate(example_pools, coder, config, enabled=config.data_process) as pools:
        yield pools


# ----------------------------------------------------------------------------- model and loss


class PatchProbe(nn.Module):
    """Linear heads on every patch token of the vision tower; discarded after training."""

    def __init__(
        self,
        hidden: int,
        class_counts: dict[str, int],
        weights: dict[str, float] | None = None,
        letter_weight: float = 1.0,
    ) -> None:
        super().__init__()
        self.heads = nn.ModuleDict({name: nn.Linear(hidden, n) for name, n in class_counts.items()})
        weights = weights or {}
        self.register_buffer("weights", torch.tensor([weights.get(name, 1.0) for name in class_counts]))
        # The letter head's class weights: "background" and "no letter" weigh 1, the letters `letter_weight`.
        letters = class_counts.get("letter", 2) - 2
        self.register_buffer("letter_class_weights", torch.tensor([1.0, 1.0] + [letter_weight] * letters))

    def loss(self, patch_states: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """Cross-entropy of every head, weighted, averaged over heads; patch_states [B, P, H], targets [B, P, heads]."""
        losses = [
            nn.functional.cross_entropy(
                head(patch_states).flatten(0, 1),
                targets[..., k].flatten(),
                weight=self.letter_class_weights if name == "letter" else None,
            )
            for k, (name, head) in enumerate(self.heads.items())
        ]
        return (torch.stack(losses) * self.weights).mean()

    @torch.no_grad()
    def accuracy(self, patch_states: torch.Tensor, targets: torch.Tensor) -> dict[str, float]:
        """Per-head accuracy on patches that show an object: how well the vision tower sees."""
        patch_states = patch_states.float()  # captured in bfloat16 under `bf16_autocast`
        covered = targets[..., 0] > 0
        return {
            name: (head(patch_states)[covered].argmax(-1) == targets[..., k][covered]).float().mean().item()
            for k, (name, head) in enumerate(self.heads.items())
        }


def answer_loss(logits: torch.Tensor, labels: torch.Tensor, token_weights: torch.Tensor | None = None) -> torch.Tensor:
    """Next-token cross-entropy over answer tokens only (logits [B, L, V], labels [B, L]).

    `token_weights` [V] weighs each target token by its id; the mean is over the weights.
    """
    return nn.functional.cross_entropy(
        logits[:, :-1].flatten(0, 1), labels[:, 1:].flatten(), weight=token_weights, ignore_index=IGNORE
    )


def answer_token_weights(
    tokenizer: PreTrainedTokenizerBase, letter_weight: float, relation_weight: float = 1.0
) -> torch.Tensor | None:
    """The caption loss's weight of every token id: `letter_weight` for letters, `relation_weight` for the
    words that say a relation's direction (left, right, above, below), 1 for the rest (None if all 1)."""
    if letter_weight == relation_weight == 1.0:
        return None
    weights = torch.ones(len(tokenizer))
    weights[tokenizer.convert_tokens_to_ids(list(LETTERS))] = letter_weight
    weights[tokenizer.convert_tokens_to_ids(list(RELATION_WORDS))] = relation_weight
    return weights


def lr_factor(step: int, progress: float, config: PretrainConfig) -> float:
    """Linear warm-up over steps, then a cosine over the budget's progress down to `min_lr_ratio`.

    `progress` is the share of the budget used (of the seconds, normally): the schedule ends when
    the time does, whatever the machine's speed.
    """
    warmup = min(1.0, (step + 1) / max(1, config.warmup_steps))
    progress = min(1.0, progress)
    cosine = config.min_lr_ratio + (1 - config.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * progress))
    return warmup * cosine


def _optimizer(model: nn.Module, probe: nn.Module, config: PretrainConfig) -> torch.optim.Optimizer:
    """AdamW; no weight decay on norms and biases (they are not weights that overfit)."""
    decay, no_decay = [], []
    for module in (model, probe):
        for name, parameter in module.named_parameters():
            (no_decay if parameter.ndim < 2 or "norm" in name else decay).append(parameter)
    groups = [{"params": decay, "weight_decay": config.weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    return torch.optim.AdamW(groups, lr=config.lr, betas=(0.9, 0.98))


def _vision_states_capture(model: LlavaForConditionalGeneration) -> dict[str, torch.Tensor]:
    """The vision tower's last hidden state of each forward pass (what LLaVA projects), for the probe."""
    captured: dict[str, torch.Tensor] = {}

    def hook(_module: nn.Module, _inputs: tuple, output: object) -> None:
        captured["states"] = output.last_hidden_state

    model.model.vision_tower.register_forward_hook(hook)
    return captured


# ----------------------------------------------------------------------------- the run


def cpu_has_native_bf16() -> bool:
    """Whether this CPU multiplies bfloat16 in hardware (AVX-512-BF16, AMX, Arm BF16).

    A torch too old to report CPU capabilities (before `torch.cpu.get_capabilities`) gets float32.
    """
    capabilities = getattr(torch.cpu, "get_capabilities", None)
    if capabilities is None:
        return False
    found = capabilities()
    return any(found.get(flag, False) for flag in ("avx512_bf16", "amx_bf16", "bf16", "sve_bf16"))


def captioner_pretrain(
    config: PretrainConfig, out_dir: Path | str, on_progress: ProgressCallback | None = None
) -> dict:
    """Train a captioner for `config.minutes` of wall time, save it to `out_dir`, return run stats.

    The whole call, model building and saving included, fits in the budget. The saved folder
    loads with `AutoModelForImageTextToText` / `AutoProcessor.from_pretrained`.
    """
    started = time.monotonic()
    if config.bf16_autocast is None:
        config = replace(config, bf16_autocast=cpu_has_native_bf16())
    torch.manual_seed(config.seed)
    model, processor = tiny_vlm_build(config.model, seed=config.seed)
    coder = PromptCoder(processor)
    threads = training_threads(config.torch_threads, busy_data_process=False)
    with torch_threads(threads), pools_open(coder, config) as pools:
        batches = batches_from_pools(pools, config, processor.tokenizer.pad_token_id)
        token_weights = answer_token_weights(
            processor.tokenizer, config.letter_caption_weight, config.relation_caption_weight
        )
        stats = _train(model, batches, config, started, token_weights, on_progress)
    model.eval()
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out_dir)
    processor.save_pretrained(out_dir)
    stats |= {"seconds": round(time.monotonic() - started, 1), "config": asdict(config)}
    (out_dir / "pretrain_stats.json").write_text(json.dumps(stats, indent=2) + "\n", encoding="utf-8")
    if on_progress is not None:
        on_progress(1.0, f"saved captioner to {out_dir}")
    return stats


@dataclass
class _Tally:
    """What a run reports about itself."""

    steps: int = 0
    samples: int = 0
    first_loss: float | None = None
    loss_ema: float | None = None
    probe_ema: float | None = None
    probe_accuracy: dict[str, float] = field(default_factory=dict)

    def add(self, samples: int, caption_loss: float | None, probe_loss: float) -> None:
        self.steps += 1
        self.samples += samples
        if caption_loss is not None:
            self.first_loss = caption_loss if self.first_loss is None else self.first_loss
            self.loss_ema = _ema(self.loss_ema, caption_loss)
        self.probe_ema = _ema(self.probe_ema, probe_loss)


def _train(
    model: LlavaForConditionalGeneration,
    batches: Iterator[dict[str, torch.Tensor]],
    config: PretrainConfig,
    started: float,
    token_weights: torch.Tensor | None,
    on_progress: ProgressCallback | None,
) -> dict:
    """The training loop: probe warm-up, then caption loss plus the probe's, until the budget is used."""
    probe = PatchProbe(
        config.model.vision_hidden,
        probe_class_counts(config.world),
        weights={"relation": config.relation_probe_weight},
        letter_weight=config.letter_probe_weight,
    )
    optimizer = _optimizer(model, probe, config)
    captured = _vision_states_capture(model)
    model.train()
    tally = _Tally()
    train_start = time.monotonic()
    budget_s = max(1.0, config.minutes * 60 - config.save_reserve_s - (train_start - started))
    with tqdm(total=100, desc="captioner", unit="%", leave=False) as bar:
        while (done := _progress(tally.steps, time.monotonic() - train_start, budget_s, config)) < 1.0:
            batch = next(batches)
            captioning = done >= config.probe_warmup_share
            # Warm-up steps are cheap and data-bound: smaller batches give more steps for the same data.
            parts = [batch] if captioning else _batch_split(batch, config.probe_warmup_batch_size)
            for part in parts:
                for group in optimizer.param_groups:
                    group["lr"] = config.lr * lr_factor(tally.steps, done, config)
                losses = _step(model, probe, optimizer, captured, part, captioning, config, token_weights)
                tally.add(len(part["labels"]), *losses)
            if tally.steps % 20 < len(parts):
                tally.probe_accuracy = probe.accuracy(captured["states"][:, 1:], parts[-1]["patch_targets"])
            bar.update(int(100 * done) - bar.n)
            bar.set_postfix(step=tally.steps, loss=f"{tally.loss_ema or 0:.3f}", probe=f"{tally.probe_ema:.3f}")
            if on_progress is not None and tally.steps % 10 < len(parts):
                on_progress(min(done, 0.99), f"step {tally.steps}, caption loss {tally.loss_ema or 0:.3f}")
    train_seconds = time.monotonic() - train_start
    return {
        "steps": tally.steps,
        "samples": tally.samples,
        "samples_per_second": round(tally.samples / train_seconds, 1),
        "first_loss": tally.first_loss,
        "final_loss": tally.loss_ema,
        "final_probe_loss": tally.probe_ema,
        "probe_accuracy": {name: round(value, 3) for name, value in tally.probe_accuracy.items()},
        "train_seconds": round(train_seconds, 1),
        "threads": torch.get_num_threads(),
    }


def _step(
    model: LlavaForConditionalGeneration,
    probe: PatchProbe,
    optimizer: torch.optim.Optimizer,
    captured: dict[str, torch.Tensor],
    batch: dict[str, torch.Tensor],
    captioning: bool,
    config: PretrainConfig,
    token_weights: torch.Tensor | None = None,
) -> tuple[float | None, float]:
    """One optimiser step: the probe's loss, plus the caption loss once captioning has started."""
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=config.bf16_autocast):
        if captioning:
            inputs = {key: batch[key] for key in ("pixel_values", "input_ids", "attention_mask")}
            logits = model(**inputs, use_cache=False).logits
        else:
            model.model.vision_tower(batch["pixel_values"])  # the probe needs nothing else
        patch_states = captured["states"][:, 1:]  # [B, patches, H]; CLS dropped, as LLaVA does
        probe_loss = probe.loss(patch_states, batch["patch_targets"])
        caption_loss = answer_loss(logits, batch["labels"], token_weights) if captioning else None
    loss = config.probe_weight * probe_loss + (caption_loss if caption_loss is not None else 0.0)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    nn.utils.clip_grad_norm_([*model.parameters(), *probe.parameters()], config.grad_clip)
    optimizer.step()
    return (None if caption_loss is None else caption_loss.item()), probe_loss.item()


def _batch_split(batch: dict[str, torch.Tensor], size: int) -> list[dict[str, torch.Tensor]]:
    """Consecutive sub-batches of at most `size` rows."""
    rows = len(batch["labels"])
    return [{key: value[k : k + size] for key, value in batch.items()} for k in range(0, rows, size)]


def _progress(step: int, elapsed_s: float, budget_s: float, config: PretrainConfig) -> float:
    """Share of the budget used: of the steps when a step budget is set, else of the seconds."""
    return step / config.steps if config.steps else elapsed_s / budget_s


def _ema(previous: float | None, value: float, decay: float = 0.95) -> float:
    return value if previous is None else decay * previous + (1 - decay) * value
