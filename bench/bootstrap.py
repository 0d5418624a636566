"""First-run bootstrap on this machine: wall time, captioner quality, TLDR vs the naive binary RM.

    python bench/bootstrap.py                       # the default budgets (what `make demo` runs)
    python bench/bootstrap.py --captioner-minutes 12 --reward-minutes 5 --out bench/results/bootstrap-long.json

Trains from scratch into a fresh models directory (never the demo's cache), then trains the paper's
naive binary reward model with the same data stream, budget and settings, and evaluates both on
the same held-out sets. Writes bench/results/bootstrap.json.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.machine import run_info
from reward.bootstrap import CAPTIONER, BootstrapConfig, models_bootstrap, reward_model_train
from reward.evaluate import held_out_scenes, own_caption_set, perturbation_set, reward_evaluate
from reward.model import TokenRewardModel
from reward.vlm import vlm_load

KEYS = ("A_T", "A_S", "A_R", "mAP_neg", "mAP_pos", "responses")


def compact(report: dict) -> dict:
    rows = {"overall": report["overall"], **report["by_category"]}
    return {
        name: {k: (round(v, 4) if isinstance(v, float) else v) for k, v in m.items() if k in KEYS}
        for name, m in rows.items()
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--captioner-minutes", type=float, default=BootstrapConfig.captioner_minutes)
    parser.add_argument("--reward-minutes", type=float, default=BootstrapConfig.reward_minutes)
    parser.add_argument("--captioner-letter-weight", type=float, default=BootstrapConfig.captioner_letter_weight)
    parser.add_argument("--eval-scenes", type=int, default=300)
    parser.add_argument("--models-dir", type=Path, default=Path("var/bench-models"))
    parser.add_argument("--out", type=Path, default=Path("bench/results/bootstrap.json"))
    args = parser.parse_args()
    config = BootstrapConfig(
        captioner_minutes=args.captioner_minutes,
        reward_minutes=args.reward_minutes,
        captioner_letter_weight=args.captioner_letter_weight,
        eval_scenes=args.eval_scenes,
    )
    shutil.rmtree(args.models_dir, ignore_errors=True)
    start = time.monotonic()
    report = models_bootstrap(args.models_dir, config)
    bootstrap_seconds = time.monotonic() - start
    naive_dir = args.models_dir / "naive-v0"
    naive_stats = reward_model_train(args.models_dir / CAPTIONER, naive_dir, config, objective="naive")
    naive, processor = TokenRewardModel.load(naive_dir)
    held_out = held_out_scenes(config.eval_scenes)
    captioner, captioner_processor = vlm_load(str(args.models_dir / CAPTIONER))
    own, _ = own_caption_set(held_out, captioner, captioner_processor)
    evaluation = report["evaluation"]
    result = {
        **run_info(),
        "config": report["config"],
        "bootstrap_wall_seconds": round(bootstrap_seconds, 1),
        "captioner_training_seconds": report["captioner_training"]["wall_seconds"],
        "captioner_training": {
            key: report["captioner_training"].get(key) for key in ("steps", "samples_per_second", "threads")
        },
        "reward_training_seconds": report["reward_training"]["wall_seconds"],
        "captioner": evaluation["captioner"],
        "perturbations": {
            "tldr": compact(evaluation["tldr_perturbations"]),
            "naive": compact(reward_evaluate(naive, processor, perturbation_set(held_out))),
        },
        "own_captions": {
            "tldr": compact(evaluation["tldr_own_captions"]),
            "naive": compact(reward_evaluate(naive, processor, own)),
            "all_bad_baseline_A_R": evaluation["tldr_own_captions"]["overall"]["A_R_all_bad_baseline"],
            "tldr_errors_by_word_kind": evaluation["tldr_own_captions"]["by_word_kind"],
        },
        "reward_training": report["reward_training"],
        "naive_training": naive_stats,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps({k: result[k] for k in ("bootstrap_wall_seconds", "captioner")}, indent=2))
    print(
        json.dumps(
            {
                "perturbations_overall": {m: result["perturbations"][m]["overall"] for m in ("tldr", "naive")},
                "own_overall": {m: result["own_captions"][m]["overall"] for m in ("tldr", "naive")},
                "all_bad_A_R": result["own_captions"]["all_bad_baseline_A_R"],
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
