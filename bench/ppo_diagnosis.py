"""What holds token-level PPO back on the built-in captioner: the judge, or the optimisation budget?

    python bench/ppo_diagnosis.py [--rollouts 300] [--images 500] [--eval-scenes 200]

Token-level PPO from the built-in captioner on round 1's images of bench/closed_loop.py, with two
judges: TLDR (the built-in reward model, as the app trains) and the parser itself, an exact judge
that scores every content word 1 if the scene makes it true and 0 otherwise (what a perfect TLDR
would say). Each with one caption per image per rollout and with four (`PpoConfig.samples_per_image`,
each caption's return taken relative to its image's other captions). Every run has the same number
of rollouts of 32 captions, so the comparison holds whatever else the machine is doing; the seconds
are recorded beside.

Reported per run: the sampled captions' mean reward over the first and the last tenth of the
rollouts (on the judge's Eq. 8 scale), the KL to the reference, the caption length, and the trained
captioner's exact H_T, H_R, content-word rate and object recall on held-out scenes (greedy captions,
as the app writes them), beside the starting captioner's. If even the exact judge barely moves the
held-out rates, the budget, not TLDR, is what limits the loop on this machine. `--judges`,
`--samples-per-image` and `--set lr=… --set kl_coef=…` (PpoConfig fields) run a part of the grid
or other settings; `--temperature T` samples the rollouts from softmax(logits / T) and trains that
distribution (greedy captions, as evaluated, do not depend on T).
Writes bench/results/ppo_diagnosis.json.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.closed_loop import CAPTIONER_RATES, round_scenes  # noqa: E402
from bench.machine import run_info  # noqa: E402

JUDGES = ("tldr", "parser")
SAMPLES_PER_IMAGE = (1, 4)
SEED = 1


def parser_judge(scene_of: dict[int, object]):
    """The exact judge: each content word of a caption scores 1 if its image's scene makes it true, else 0."""
    from shapeworld.hallucination import word_is_bad
    from shapeworld.parser import caption_label

    def judge(images: list, captions: list[str]) -> list[list[tuple[int, int, float]]]:
        return [
            [
                (word.start, word.end, 0.0 if word_is_bad(word) else 1.0)
                for word in caption_label(scene_of[id(image)], caption)
                if word.label != "neutral"
            ]
            for image, caption in zip(images, captions, strict=True)
        ]

    return judge


def run_one(*, judge: str, samples_per_image: int, args: argparse.Namespace, data: dict, out: Path) -> dict:
    """Train one captioner with PPO and the given judge; its run statistics."""
    from reward.bootstrap import CAPTIONER, REWARD_MODEL
    from training.loop import CaptionPair, PolicyTrainConfig, policy_train
    from training.policy import CaptionPolicy, PolicyConfig, policy_save
    from training.ppo import PpoConfig, ppo_train
    from training.rewards import PROBABILITY_BASELINES, ShapingConfig, judged_token_rewards

    ppo = PpoConfig(**{**args.ppo_overrides, "samples_per_image": samples_per_image})
    sampling = PolicyConfig(temperature=args.temperature)
    if judge == "tldr":
        pairs = [CaptionPair(*row) for row in zip(data["images"], data["captions"], data["corrected"], strict=True)]
        return policy_train(
            captioner_dir=args.models_dir / CAPTIONER,
            out_dir=out,
            config=PolicyTrainConfig(method="ppo_tokens", max_steps=args.rollouts, seed=SEED, policy=sampling, ppo=ppo),
            images=data["images"],
            corrections=pairs,
            reward_dir=args.models_dir / REWARD_MODEL,
            scenes=data["scenes"],
        )
    # The parser's scores are exactly 1 and 0 on the two sides: they are their own Eq. 7 baselines.
    policy = CaptionPolicy.load(args.models_dir / CAPTIONER, sampling, seed=SEED)
    scene_of = {id(image): scene for image, scene in zip(data["images"], data["scenes"], strict=True)}
    rewards = judged_token_rewards(parser_judge(scene_of), PROBABILITY_BASELINES, ShapingConfig())
    stats = ppo_train(policy, data["images"], rewards, ppo, minutes=None, max_rollouts=args.rollouts, seed=SEED)
    policy_save(policy, out)
    return stats


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rollouts", type=int, default=300, help="PPO rollouts of 32 captions per run")
    parser.add_argument("--images", type=int, default=500)
    parser.add_argument("--eval-scenes", type=int, default=200)
    parser.add_argument("--models-dir", type=Path, default=ROOT / "var/models")
    parser.add_argument("--work-dir", type=Path, default=ROOT / "var/ppo_diagnosis")
    parser.add_argument("--out", type=Path, default=ROOT / "bench/results/ppo_diagnosis.json")
    parser.add_argument("--judges", default=",".join(JUDGES), help="comma-separated: tldr, parser")
    parser.add_argument("--samples-per-image", default=",".join(map(str, SAMPLES_PER_IMAGE)), help="comma-separated")
    parser.add_argument(
        "--set", action="append", default=[], metavar="KEY=VALUE", help="a PpoConfig field, e.g. lr=1e-3 kl_coef=0.02"
    )
    parser.add_argument("--temperature", type=float, default=1.0, help="sampling temperature of the rollouts")
    args = parser.parse_args()
    args.ppo_overrides = {key: json.loads(value) for key, _, value in (item.partition("=") for item in args.set)}

    from reward.bootstrap import CAPTIONER, models_bootstrap
    from reward.evaluate import held_out_scenes
    from reward.vlm import captions_generate, default_device, vlm_load
    from shapeworld.simulate import caption_correct
    from training.evaluate import policy_evaluate

    models_bootstrap(args.models_dir)
    shutil.rmtree(args.work_dir, ignore_errors=True)
    scenes, images = round_scenes(1, args.images)
    captioner, processor = vlm_load(str(args.models_dir / CAPTIONER))
    captions = captions_generate(captioner.to(default_device()), processor, images, batch_size=64)
    corrected = [caption_correct(scene, caption) for scene, caption in zip(scenes, captions, strict=True)]
    data = {"scenes": scenes, "images": images, "captions": captions, "corrected": corrected}
    held_out = held_out_scenes(args.eval_scenes)

    def exact(captioner_dir: Path) -> dict:
        report = policy_evaluate(captioner_dir=captioner_dir, images=held_out.images, scenes=held_out.scenes)
        return {key: report["exact"][key] for key in CAPTIONER_RATES} | {"words": report["mean_caption_words"]}

    results = {"start": exact(args.models_dir / CAPTIONER), "runs": []}
    for judge in args.judges.split(","):
        for samples_per_image in map(int, args.samples_per_image.split(",")):
            out = args.work_dir / f"{judge}-{samples_per_image}"
            clock = time.monotonic()
            stats = run_one(judge=judge, samples_per_image=samples_per_image, args=args, data=data, out=out)
            curve = stats["reward_curve"]
            tenth = max(1, len(curve) // 10)
            run = {
                "judge": judge,
                "samples_per_image": samples_per_image,
                "rollouts": stats["steps"],
                "reward_first_tenth": round(sum(curve[:tenth]) / tenth, 4),
                "reward_last_tenth": round(sum(curve[-tenth:]) / tenth, 4),
                "kl": stats["kl"],
                "caption_tokens": stats["caption_tokens"],
                "train_seconds": stats["seconds"],
                "held_out": exact(out),
                "wall_seconds": round(time.monotonic() - clock, 1),
            }
            results["runs"].append(run)
            print(json.dumps(run), flush=True)
            args.out.parent.mkdir(parents=True, exist_ok=True)
            args.out.write_text(json.dumps({"run": run_info(), "settings": vars_of(args), **results}, indent=2) + "\n")


def vars_of(args: argparse.Namespace) -> dict:
    return {
        "rollouts": args.rollouts,
        "images": args.images,
        "eval_scenes": args.eval_scenes,
        "rollout_captions": 32,
        "seed": SEED,
        "ppo_overrides": args.ppo_overrides,
        "temperature": args.temperature,
    }


if __name__ == "__main__":
    main()
