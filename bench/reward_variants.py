"""Does TLDR look at the image? Reward-model training variants on the built-in captioner, compared.

    python bench/reward_variants.py --name default
    python bench/reward_variants.py --name scenes-together --scenes-together --own-share 0 --bad-weight 4
    python bench/reward_variants.py --name hidden-only --head-on-hidden-only
    python bench/reward_variants.py --name read-once --read-once
    python bench/reward_variants.py --name within-axis --spatial-within-axis
    python bench/reward_variants.py --name vision-lora --vision-lora

Trains a reward model on the built-in captioner (var/models, bootstrapped if missing) for a fixed
number of steps (so runs compare whatever else the machine is doing), or with `--minutes` for the
bootstrap's time budget (which charges a variant for slower steps; idle machine only), with the bootstrap's data
stream and settings except what the options change, then reports mAP(neg) on held-out
perturbations, overall and per category, and on the captioner's own greedy captions. Beside them,
the image test: one true caption scored against every held-out image, the spread (standard
deviation over images) of each word kind's p_bad; a model that reads word-type priors and not the
image gives every image the same scores. Each run is appended to bench/results/reward_variants.json.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
from contextlib import AbstractContextManager, closing, nullcontext
from functools import partial
from pathlib import Path
from unittest.mock import patch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.machine import run_info  # noqa: E402

OUT = ROOT / "bench/results/reward_variants.json"


def image_spread(model, processor, held_out, caption_count: int = 20) -> dict[str, float]:
    """Mean over captions of the std over images of each word kind's p_bad, for true captions of held-out scenes."""
    from reward.detect import token_scores
    from shapeworld.grammar import caption_words, caption_write
    from shapeworld.parser import word_kind

    spreads: dict[str, list[float]] = {}
    for scene in held_out.scenes[:caption_count]:
        caption = caption_write(scene)
        kind_at = {start: word_kind(word) for word, start, _ in caption_words(caption)}
        scored = token_scores(model, processor, held_out.images, [caption] * len(held_out.images), batch_size=64)
        for position, (start, _) in enumerate(scored[0][0]):
            kind = kind_at.get(start)
            if kind in (None, "function", "unknown"):
                continue
            spreads.setdefault(kind, []).append(statistics.pstdev(p_bad[position] for _, p_bad in scored))
    return {kind: round(statistics.mean(values), 4) for kind, values in sorted(spreads.items())}


def spatial_within_axis() -> AbstractContextManager:
    """Spatial negatives as before the other axis was added: "left" <-> "right", "above" <-> "below" only.

    The training stream's process is forked inside this context, so it makes its negatives this way.
    """
    from shapeworld import perturb

    def within_axis(scene, parse, rng):
        edits = perturb._spatial_candidates(scene, parse, rng)
        return [edit for edit in edits if not edit.delete and not edit.insert_after]

    return patch.dict(perturb._CANDIDATES, {"spatial_relationship": within_axis})


def vision_lora() -> AbstractContextManager:
    """LoRA in the vision tower too, which TLDR keeps frozen: does the frozen tower limit the scores?"""
    from reward import model

    return patch.object(model, "lora_targets", partial(model.lora_targets, train_vision=True))


def likelihood_init(model, weights: list[float]) -> None:
    """Start the head's weights on the likelihood inputs elsewhere than `TokenRewardModel`'s (1, -0.5).

    At (1, -1) the head reads log P(token) - best log P, which is 0 for every token of a greedy
    caption, so it starts blind to how sure the captioner was; (1, -0.5) also reads half the best
    log-probability: the less sure, the more suspect.
    """
    import torch

    inputs = model.config.likelihood_inputs
    if len(weights) != inputs:
        raise SystemExit(f"--likelihood-init needs {inputs} numbers, one per likelihood input")
    with torch.no_grad():
        model.head.weight[0, -inputs:] = torch.tensor(weights)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--name", required=True, help="what the run is called in the results")
    parser.add_argument("--steps", type=int, default=600)
    parser.add_argument("--minutes", type=float, help="a time budget instead of --steps, as the bootstrap trains")
    parser.add_argument("--seed", type=int, default=0, help="of the training stream and the model's initialisation")
    parser.add_argument("--own-share", type=float, default=0.3)
    parser.add_argument("--bad-weight", type=float, default=1.0)
    parser.add_argument("--lr", type=float, default=2e-3)
    parser.add_argument("--lora-r", type=int, default=16, help="LoRA rank")
    parser.add_argument("--lora-alpha", type=int, help="LoRA alpha; by default twice the rank, as RewardConfig's")
    parser.add_argument("--scenes-together", action="store_true", help="true caption and negatives together")
    parser.add_argument("--image-side-share", type=float, default=0.0, help="scenes with an image-side negative")
    parser.add_argument("--reflection-share", type=float, default=0.0, help="scenes with a reflected-image negative")
    parser.add_argument("--head-on-hidden-only", action="store_true", help="the head reads h_k alone")
    parser.add_argument("--read-once", action="store_true", help="each caption read once, as before reads_twice")
    parser.add_argument(
        "--spatial-within-axis", action="store_true", help="train on spatial flips within an axis only, as before"
    )
    parser.add_argument("--bf16", action="store_true", help="training steps in bfloat16 autocast (CPU)")
    parser.add_argument("--vision-lora", action="store_true", help="LoRA in the vision tower too (TLDR freezes it)")
    parser.add_argument("--likelihood-inputs", type=int, default=2, help="3: the runner-up log-probability too")
    parser.add_argument(
        "--likelihood-init",
        type=lambda text: [float(x) for x in text.split(",")],
        help="the head's starting weights on the likelihood inputs, e.g. 1,-1 (TokenRewardModel starts at 1,-0.5)",
    )
    parser.add_argument(
        "--eval-scenes", type=int, default=500, help="held-out scenes; at 200 the own-caption score of one model swings"
    )
    parser.add_argument("--models-dir", type=Path, default=ROOT / "var/models")
    args = parser.parse_args()

    from reward.bootstrap import CAPTIONER, models_bootstrap
    from reward.evaluate import held_out_scenes, own_caption_set, perturbation_set, reward_evaluate
    from reward.model import RewardConfig, TokenRewardModel
    from reward.train import TrainConfig, reward_train, shapeworld_batches
    from reward.vlm import vlm_load
    from shapeworld.scene import WorldConfig

    models_bootstrap(args.models_dir)
    captioner_dir = args.models_dir / CAPTIONER
    vlm, processor = vlm_load(str(captioner_dir))
    config = RewardConfig(
        lora_r=args.lora_r,
        lora_alpha=args.lora_alpha or 2 * args.lora_r,
        lora_dropout=0.0,
        bad_weight=args.bad_weight,
        reads_likelihood=not args.head_on_hidden_only,
        reads_twice=not args.read_once,
        likelihood_inputs=args.likelihood_inputs,
    )
    with vision_lora() if args.vision_lora else nullcontext():
        model = TokenRewardModel.build(vlm, config, base_model=str(captioner_dir))
    if args.likelihood_init:
        likelihood_init(model, args.likelihood_init)
    captioner = vlm_load(str(captioner_dir))
    batches = shapeworld_batches(
        random.Random(args.seed),
        WorldConfig(),
        batch_size=32,
        captioner=captioner,
        own_share=args.own_share,
        scenes_together=args.scenes_together,
        image_side_share=args.image_side_share,
        reflection_share=args.reflection_share,
    )
    within_axis = spatial_within_axis() if args.spatial_within_axis else nullcontext()
    with closing(batches), within_axis:
        budget = (
            {"minutes": args.minutes, "max_steps": None} if args.minutes else {"minutes": None, "max_steps": args.steps}
        )
        stats = reward_train(
            model, processor, batches, TrainConfig(**budget, lr=args.lr, seed=args.seed, bf16_autocast=args.bf16)
        )
    held_out = held_out_scenes(args.eval_scenes)
    perturbations = reward_evaluate(model, processor, perturbation_set(held_out))
    own, _ = own_caption_set(held_out, *captioner)
    own_report = reward_evaluate(model, processor, own)
    info = run_info()
    run = {
        "name": args.name,
        "command": info["command"],
        "date": info["date"],
        "machine": info["machine"],
        "settings": {key: value for key, value in vars(args).items() if key not in ("name", "models_dir")},
        "training": {key: stats[key] for key in ("steps", "seconds", "final_loss")},
        "perturbations_mAP_neg": round(perturbations["overall"]["mAP_neg"], 4),
        "perturbations_by_category_mAP_neg": {
            category: round(report["mAP_neg"], 4)
            for category, report in perturbations["by_category"].items()
            if category != "true"
        },
        "own_captions_mAP_neg": round(own_report["overall"]["mAP_neg"], 4),
        "own_captions_errors_by_kind": own_report["by_word_kind"],
        "p_bad_spread_over_images": image_spread(model, processor, held_out),
    }
    print(json.dumps(run), flush=True)
    results = json.loads(OUT.read_text()) if OUT.is_file() else {"runs": []}
    results["runs"].append(run)
    OUT.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
