"""Self-correction (TLDR §5.3) on the built-in models: the captioner fixes the captions TLDR flags,
told the flagged words, against a whole-caption flag ("look again at: everything").

    python bench/self_correction.py [--models-dir var/models] [--scenes 300]

Writes bench/results/self_correction.json.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.machine import run_info
from reward.bootstrap import REWARD_MODEL
from reward.selfcorrect import self_correction_experiment


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models-dir", type=Path, default=Path("var/models"))
    parser.add_argument("--scenes", type=int, default=300)
    parser.add_argument("--out", type=Path, default=Path("bench/results/self_correction.json"))
    args = parser.parse_args()
    reward_dir = args.models_dir / REWARD_MODEL
    report = self_correction_experiment(args.models_dir, reward_dir=reward_dir, n_scenes=args.scenes)
    result = {**run_info(), **report}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
