"""Command line of captioner training on shapeworld: `python -m training ppo | sft | eval | verifier`.

    python -m training ppo --captioner var/models/captioner-v0 --reward-model var/models/tldr-v0 \\
        --method ppo_tokens --minutes 5 --out var/models/captioner-ppo
    python -m training sft --captioner var/models/captioner-v0 --minutes 5 --out var/models/captioner-sft
    python -m training eval --captioner var/models/captioner-ppo --reward-model var/models/tldr-v0 --scenes 300
    python -m training verifier --minutes 2 --out var/models/verifier   # for --method ppo_verifier

Training scenes come from a seed of their own (apart from the held-out evaluation scenes); their
ground truth gives PPO's reward baselines, and SFT's corrections are what a perfect annotator would
write (each scene's true caption for the captioner's own caption).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from reward.cli import MODELS_DIR_HELP, ProgressBar, command_run, models_dir

# Training scenes are drawn from here on (plus --seed), apart from the held-out and validation seeds.
TRAINING_SCENE_SEED = 2_000_000


def _captioner(args: argparse.Namespace) -> Path:
    from reward.bootstrap import CAPTIONER

    return Path(args.captioner) if args.captioner else models_dir(args) / CAPTIONER


def _reward_model(args: argparse.Namespace, *, required: bool) -> Path | None:
    """--reward-model, else the bootstrap's; where one is not required, only if it exists."""
    from reward.bootstrap import REWARD_MODEL

    if args.reward_model:
        return Path(args.reward_model)
    default = models_dir(args) / REWARD_MODEL
    return default if required or default.is_dir() else None


def training_scenes(n: int, seed: int) -> tuple[list, list]:
    """`n` fresh shapeworld scenes and their images, from the training seed range."""
    from shapeworld.render import scenes_drawn

    return scenes_drawn(n, TRAINING_SCENE_SEED + seed)


def _config(args: argparse.Namespace, method: str):
    from training.loop import PolicyTrainConfig
    from training.ppo import PpoConfig

    ppo = (
        PpoConfig(kl_coef=args.kl_coef, lr=args.lr, samples_per_image=args.samples_per_image)
        if method != "sft"
        else PpoConfig()
    )
    return PolicyTrainConfig(
        method=method, minutes=args.minutes, max_steps=args.max_steps, seed=args.seed, ppo=ppo, device=args.device
    )


def _train(
    args: argparse.Namespace, method: str, corrections: list, scenes: list, images: list, reward_dir: Path | None
) -> int:
    from training.loop import policy_train

    bar = ProgressBar(method)
    try:
        stats = policy_train(
            captioner_dir=_captioner(args),
            out_dir=args.out,
            config=_config(args, method),
            images=images,
            corrections=corrections,
            reward_dir=reward_dir,
            verifier_dir=Path(args.verifier) if getattr(args, "verifier", None) else None,
            scenes=scenes,
            on_progress=bar,
        )
    finally:
        bar.close()
    print(json.dumps({"saved": str(args.out), **stats}, indent=2))
    return 0


def command_ppo(args: argparse.Namespace) -> int:
    scenes, images = training_scenes(args.scenes, args.seed)
    reward_dir = _reward_model(args, required=args.method != "ppo_verifier")
    return _train(args, args.method, [], scenes, images, reward_dir)


def command_sft(args: argparse.Namespace) -> int:
    from reward.vlm import captions_generate, vlm_load
    from shapeworld.grammar import caption_write
    from training.loop import CaptionPair

    scenes, images = training_scenes(args.scenes, args.seed)
    captioner, processor = vlm_load(str(_captioner(args)))
    originals = captions_generate(captioner, processor, images, batch_size=64)
    del captioner
    corrections = [
        CaptionPair(image, original, caption_write(scene))
        for scene, image, original in zip(scenes, images, originals, strict=True)
    ]
    return _train(args, "sft", corrections, scenes, images, None)


def command_eval(args: argparse.Namespace) -> int:
    from reward.evaluate import held_out_scenes
    from training.evaluate import policy_evaluate

    held_out = held_out_scenes(args.scenes)
    report = policy_evaluate(
        captioner_dir=_captioner(args),
        images=held_out.images,
        scenes=held_out.scenes,
        reward_dir=_reward_model(args, required=False),
    )
    print(json.dumps(report, indent=2))
    return 0


def command_verifier(args: argparse.Namespace) -> int:
    from training.verifier import VerifierConfig, verifier_train

    bar = ProgressBar("verifier")
    try:
        config = VerifierConfig(
            minutes=args.minutes, max_steps=args.max_steps, seed=args.seed, eval_scenes=args.eval_scenes
        )
        stats = verifier_train(config, args.out, on_progress=bar)
    finally:
        bar.close()
    print(json.dumps(stats, indent=2))
    return 0


def parser_build() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m training", description=__doc__)
    parser.add_argument("--models-dir", help=MODELS_DIR_HELP)
    commands = parser.add_subparsers(dest="command", required=True)

    def trainer(name: str, help_text: str) -> argparse.ArgumentParser:
        command = commands.add_parser(name, help=help_text)
        command.add_argument("--captioner", help="captioner directory (default: the bootstrap's)")
        command.add_argument("--scenes", type=int, default=512, help="training scenes (fresh, from --seed)")
        command.add_argument("--minutes", type=float, default=5.0)
        command.add_argument("--max-steps", type=int, help="PPO rollouts or SFT steps (with or instead of --minutes)")
        command.add_argument("--seed", type=int, default=0)
        command.add_argument("--device", help="cpu, cuda, ... (default: a GPU when there is one)")
        command.add_argument("--out", type=Path, required=True, help="directory to save the trained captioner in")
        return command

    ppo = trainer("ppo", "PPO with token-level (or sentence, or verifier) rewards")
    ppo.add_argument("--method", choices=("ppo_tokens", "ppo_sentence", "ppo_verifier"), default="ppo_tokens")
    ppo.add_argument("--reward-model", help="TLDR model directory (default: the bootstrap's)")
    ppo.add_argument("--verifier", help="verifier directory (for --method ppo_verifier)")
    ppo.add_argument("--kl-coef", type=float, default=0.3, help="β of the KL penalty to the reference captioner")
    ppo.add_argument("--lr", type=float, default=1e-4)
    ppo.add_argument(
        "--samples-per-image", type=int, default=4, help="captions per image per rollout, judged against each other"
    )
    ppo.set_defaults(run=command_ppo)

    sft = trainer("sft", "supervised fine-tuning on corrected captions (the baseline)")
    sft.set_defaults(run=command_sft)

    evaluate = commands.add_parser("eval", help="hallucination rates of a captioner on held-out scenes")
    evaluate.add_argument("--captioner", help="captioner directory (default: the bootstrap's)")
    evaluate.add_argument("--reward-model", help="TLDR model to judge with (default: the bootstrap's, if any)")
    evaluate.add_argument("--scenes", type=int, default=300)
    evaluate.set_defaults(run=command_eval)

    verifier = commands.add_parser("verifier", help="train the image-text verifier (FiSAO's vision-encoder reward)")
    verifier.add_argument("--minutes", type=float, default=2.0)
    verifier.add_argument("--max-steps", type=int, help="steps (with or instead of --minutes)")
    verifier.add_argument("--eval-scenes", type=int, default=300, help="held-out scenes for the AUC it reports")
    verifier.add_argument("--seed", type=int, default=0)
    verifier.add_argument("--out", type=Path, required=True, help="directory to save the verifier in")
    verifier.set_defaults(run=command_verifier)
    return parser


def main(argv: list[str] | None = None) -> int:
    return command_run(parser_build().parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
