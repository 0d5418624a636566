"""Where does a captioner lose the letters drawn on objects: in the vision tower or in the decoder?

    python bench/letter_reading.py var/bench-models/captioner-v0 var/cq/letters-s0 [...]

For each saved captioner, on scenes with a letter (held-out scenes of their own seed):
- tower: accuracy of a fresh linear probe that reads the letter from the vision tower's output at
  the patch under the lettered object (trained on other scenes): what the image features hold;
- decoder: how often the letter the captioner finds most likely, teacher-forced on the canonical
  caption up to the letter, is the true one: what the decoder makes of those features;
- captions: the share of letters its greedy captions name wrongly, judged by the parser.
Chance is one in eight everywhere. Writes bench/results/letter_reading.json.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.machine import run_info
from reward.evaluate import held_out_scenes
from reward.vlm import captions_generate, vlm_load
from shapeworld.grammar import caption_write
from shapeworld.hallucination import captioner_rates
from shapeworld.pretrain import PromptCoder, pixels_normalise
from shapeworld.render import scene_render
from shapeworld.scene import LETTERS, Scene, WorldConfig, scene_sample
from shapeworld.tiny_vlm import CAPTION_INSTRUCTION

PROBE_SEED = 20261201
# Held-out scenes (every kind, from the evaluation seed) the captions are judged on.
CAPTION_SCENES = 500


def lettered_scenes(n: int, seed: int) -> list[Scene]:
    """`n` scenes that show at least one letter, sampled from `seed`."""
    rng, world, found = random.Random(seed), WorldConfig(), []
    while len(found) < n:
        scene = scene_sample(rng, world)
        if any(group.letter for group in scene.groups):
            found.append(scene)
    return found


@torch.no_grad()  # not inference mode: the probe trains on these tensors
def letter_patch_features(model, scenes: list[Scene]) -> tuple[torch.Tensor, torch.Tensor]:
    """The tower's output at the patch under each lettered object, and the letter's index."""
    tower = model.model.vision_tower
    side, patch = tower.config.image_size, tower.config.patch_size
    grid = side // patch
    features, letters = [], []
    for start in range(0, len(scenes), 64):
        batch = scenes[start : start + 64]
        pixels = pixels_normalise(np.stack([np.array(scene_render(scene, side)) for scene in batch]))
        states = tower(pixels).last_hidden_state[:, 1:]  # CLS dropped, as LLaVA does
        for row, scene in zip(states, batch, strict=True):
            for group in scene.groups:
                if group.letter is not None:
                    x, y = group.positions[0]
                    features.append(row[min(grid - 1, int(y * grid)) * grid + min(grid - 1, int(x * grid))])
                    letters.append(LETTERS.index(group.letter))
    return torch.stack(features).float(), torch.tensor(letters)


def probe_accuracy(train: tuple[torch.Tensor, torch.Tensor], test: tuple[torch.Tensor, torch.Tensor]) -> float:
    """Held-out accuracy of a linear softmax probe (standardised features, light weight decay)."""
    (x_train, y_train), (x_test, y_test) = train, test
    mean, std = x_train.mean(0), x_train.std(0) + 1e-5
    x_train, x_test = (x_train - mean) / std, (x_test - mean) / std
    torch.manual_seed(0)
    probe = torch.nn.Linear(x_train.shape[1], len(LETTERS))
    optimizer = torch.optim.Adam(probe.parameters(), lr=1e-2, weight_decay=1e-3)
    with torch.enable_grad():
        for _ in range(500):
            optimizer.zero_grad()
            torch.nn.functional.cross_entropy(probe(x_train), y_train).backward()
            optimizer.step()
    with torch.no_grad():
        return (probe(x_test).argmax(-1) == y_test).float().mean().item()


@torch.inference_mode()
def teacher_forced_accuracy(model, processor, scenes: list[Scene]) -> float:
    """Share of letters in canonical captions that the decoder ranks first among the eight letters."""
    letter_ids = processor.tokenizer.convert_tokens_to_ids(list(LETTERS))
    coder = PromptCoder(processor)  # the ids the captioner was trained on
    side = model.model.vision_tower.config.image_size
    right = []
    for scene in scenes:
        sequence, answer_start = coder.sequence(CAPTION_INSTRUCTION, caption_write(scene))
        ids = torch.tensor([sequence])
        pixels = pixels_normalise(np.array(scene_render(scene, side))[None])
        logits = model(pixel_values=pixels, input_ids=ids, attention_mask=torch.ones_like(ids)).logits[0]
        for position in range(answer_start, len(sequence)):
            if sequence[position] in letter_ids:
                predicted = logits[position - 1, letter_ids].argmax().item()
                right.append(letter_ids[predicted] == sequence[position])
    return float(np.mean(right))


def captioner_letters(captioner_dir: str, n_probe: int, n_eval: int) -> dict:
    model, processor = vlm_load(captioner_dir)
    model.eval()
    probe_scenes = lettered_scenes(n_probe, seed=PROBE_SEED)
    eval_scenes = lettered_scenes(n_eval, seed=PROBE_SEED + 1)
    held_out = held_out_scenes(CAPTION_SCENES)
    captions = captions_generate(model, processor, held_out.images)
    rates = captioner_rates(held_out.scenes, captions)
    stats_path = Path(captioner_dir) / "pretrain_stats.json"
    config = json.loads(stats_path.read_text())["config"] if stats_path.is_file() else {}
    return {
        "captioner": captioner_dir,
        "training": {
            key: config.get(key) for key in ("seed", "minutes", "letter_probe_weight", "letter_caption_weight")
        },
        "tower_probe_accuracy": round(
            probe_accuracy(letter_patch_features(model, probe_scenes), letter_patch_features(model, eval_scenes)), 3
        ),
        "decoder_teacher_forced_accuracy": round(teacher_forced_accuracy(model, processor, eval_scenes), 3),
        "captions_letters_wrong": round(rates["per_kind"]["letter"], 3),
        "captions_content_words_wrong": round(rates["content_word_hallucination_rate"], 4),
        "captions_object_recall": round(rates["object_recall"], 4),
        "held_out_scenes": CAPTION_SCENES,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("captioners", nargs="+", help="saved captioner directories")
    parser.add_argument("--probe-scenes", type=int, default=2000, help="lettered scenes the probe trains on")
    parser.add_argument("--eval-scenes", type=int, default=500, help="lettered scenes it is tested on")
    parser.add_argument("--out", default="bench/results/letter_reading.json")
    args = parser.parse_args(argv)
    torch.set_num_threads(2)
    results = []
    for captioner_dir in args.captioners:
        results.append(captioner_letters(captioner_dir, args.probe_scenes, args.eval_scenes))
        print(json.dumps(results[-1]))
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({**run_info(), "captioners": results}, indent=2) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
