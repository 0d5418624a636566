"""How much faster is a training step of the built-in captioner in bfloat16 autocast than in float32?

    python bench/train_step_precision.py [--threads 1] [--steps 25] [--repeats 2]

The bootstrap's budgets are wall-clock minutes, so a faster step is more steps and a better model in
the same ten minutes. CPUs with AVX-512-BF16 or AMX run bfloat16 matrix products natively; others
emulate them, slower than float32. One fresh captioner is trained on the same eight batches of 32
examples, the two precisions alternating `--repeats` times so machine drift hits both; reported is
the median step time of each (the first three steps of every run left out as warm-up). Only speed
is measured here: whether the captioner learns as well in bfloat16 is for bench/captioner_quality.py.
Writes bench/results/train_step_precision.json.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import time
from dataclasses import replace
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.machine import run_info
from shapeworld.pretrain import (
    PatchProbe,
    PretrainConfig,
    PromptCoder,
    _optimizer,
    _step,
    _vision_states_capture,
    batch_collate,
    cpu_has_native_bf16,
    example_make,
    probe_class_counts,
)
from shapeworld.tiny_vlm import tiny_vlm_build

WARM_UP = 3
# Result name -> `PretrainConfig.bf16_autocast`: the switch training itself uses.
PRECISIONS = {"float32": False, "bfloat16_autocast": True}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, default=1, help="torch threads (the bootstrap trains with 1 on 2 cores)")
    parser.add_argument("--steps", type=int, default=25)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--out", type=Path, default=Path("bench/results/train_step_precision.json"))
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    config = PretrainConfig()
    model, processor = tiny_vlm_build(config.model, seed=0)
    coder, rng = PromptCoder(processor), random.Random(0)
    batches = [
        batch_collate(
            [example_make(rng, coder, config) for _ in range(config.batch_size)], processor.tokenizer.pad_token_id
        )
        for _ in range(8)
    ]
    probe = PatchProbe(config.model.vision_hidden, probe_class_counts(config.world))
    optimizer, captured = _optimizer(model, probe, config), _vision_states_capture(model)
    model.train()

    def run(bf16_autocast: bool) -> list[float]:
        step_config = replace(config, bf16_autocast=bf16_autocast)
        seconds = []
        for index in range(args.steps):
            start = time.perf_counter()
            _step(model, probe, optimizer, captured, batches[index % len(batches)], True, step_config)
            seconds.append(time.perf_counter() - start)
        return seconds[WARM_UP:]

    times: dict[str, list[float]] = {name: [] for name in PRECISIONS}
    for _ in range(args.repeats):
        for name, bf16_autocast in PRECISIONS.items():
            times[name] += run(bf16_autocast)
    medians = {name: round(statistics.median(values) * 1000, 1) for name, values in times.items()}
    result = {
        **run_info(),
        "cpu_native_bf16": cpu_has_native_bf16(),
        "threads": args.threads,
        "batch_size": config.batch_size,
        "median_step_ms": medians,
        "bfloat16_speed_up": round(medians["float32"] / medians["bfloat16_autocast"], 2),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps({key: result[key] for key in ("median_step_ms", "bfloat16_speed_up")}))


if __name__ == "__main__":
    main()
