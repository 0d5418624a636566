"""Likelihood optimisation for free (TLDR §5.4) on the built-in models: the TLDR LoRA merged into the
captioner at scale τ, and the captioner's exact hallucination rates and object recall for each τ.

    python bench/likelihood.py [--model var/models/tldr-v0] [--scenes 300]

Writes bench/results/likelihood.json.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.machine import run_info
from reward.likelihood import TAUS, likelihood_experiment

KEYS = ("content_word_hallucination_rate", "H_T", "H_S", "H_R", "object_recall", "exact_match")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", type=Path, default=Path("var/models/tldr-v0"))
    parser.add_argument("--scenes", type=int, default=300)
    parser.add_argument("--out", type=Path, default=Path("bench/results/likelihood.json"))
    args = parser.parse_args()
    report = likelihood_experiment(args.model, taus=TAUS, n_scenes=args.scenes)
    result = {**run_info(), "model": str(args.model), **report}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    for tau, rates in report["by_tau"].items():
        print(f"tau {tau:>5}: " + "  ".join(f"{k} {rates[k]:.3f}" for k in KEYS))


if __name__ == "__main__":
    main()
