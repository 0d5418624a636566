"""Detection throughput of the default TLDR model: captions/s by batch size, and peak memory.

    python bench/detect_throughput.py [--model var/models/tldr-v0] [--captions 512]

Scores the captioner's own captions of held-out scenes (what the app scores) with `reward.detect.score`,
word spans included, at batch sizes 1..256; each size is timed three times and the median kept. Peak
memory is this process's peak resident set (model, captions and images included). Writes
bench/results/detect_throughput.json.
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import torch

from bench.machine import run_info
from reward.detect import score
from reward.evaluate import held_out_scenes
from reward.model import TokenRewardModel, reward_model_manifest
from reward.vlm import captions_generate, vlm_load

BATCH_SIZES = (1, 8, 32, 64, 128, 256)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", type=Path, default=Path("var/models/tldr-v0"))
    parser.add_argument("--captions", type=int, default=512)
    parser.add_argument("--out", type=Path, default=Path("bench/results/detect_throughput.json"))
    args = parser.parse_args()
    held_out = held_out_scenes(args.captions)
    captioner, processor = vlm_load(reward_model_manifest(args.model)["base_model"])
    captions = captions_generate(captioner, processor, held_out.images, batch_size=64)
    del captioner
    model, reward_processor = TokenRewardModel.load(args.model)
    score(model, reward_processor, held_out.images[:64], captions[:64], batch_size=64)  # warm-up
    rows = {}
    for batch_size in BATCH_SIZES:
        n = min(args.captions, max(64, batch_size * 4))
        seconds = []
        for _ in range(3):
            start = time.perf_counter()
            score(model, reward_processor, held_out.images[:n], captions[:n], batch_size=batch_size)
            seconds.append(time.perf_counter() - start)
        rows[batch_size] = {
            "captions": n,
            "median_seconds": round(statistics.median(seconds), 4),
            "captions_per_second": round(n / statistics.median(seconds), 1),
        }
        print(batch_size, rows[batch_size], flush=True)
    best = max(rows, key=lambda b: rows[b]["captions_per_second"])
    result = {
        **run_info(),
        "model": str(args.model),
        "parameters": sum(p.numel() for p in model.parameters()),
        "by_batch_size": rows,
        "batch_1_captions_per_second": rows[1]["captions_per_second"],
        "best_batch_size": best,
        "best_captions_per_second": rows[best]["captions_per_second"],
        "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "torch_threads": torch.get_num_threads(),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(
        json.dumps(
            {
                k: result[k]
                for k in ("batch_1_captions_per_second", "best_batch_size", "best_captions_per_second", "peak_rss_mib")
            }
        )
    )


if __name__ == "__main__":
    main()
