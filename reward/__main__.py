"""Command line of TLDR: `python -m reward bootstrap | train | eval | detect | correct | labels`.

Models live under `--models-dir` (default `$TLDR_MODELS_DIR` or `var/models`): `captioner-v0` and
`tldr-v0` from the bootstrap. `--model` names any saved reward model; `TLDR_BACKBONE` (or `--backbone`)
names the VLM a new reward model is trained on, a local directory or a hub id.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
from collections.abc import Iterator
from contextlib import nullcontext
from pathlib import Path

from reward.cli import MODELS_DIR_HELP, command_run, models_dir, with_progress_bar


def _reward_dir(args: argparse.Namespace) -> Path:
    from reward.bootstrap import REWARD_MODEL

    return Path(args.model) if args.model else models_dir(args) / REWARD_MODEL


def command_bootstrap(args: argparse.Namespace) -> int:
    from reward.bootstrap import BootstrapConfig, bootstrap_config, models_bootstrap
    from reward.report import bootstrap_table

    models = models_dir(args)
    asked = {
        name: value
        for name, value in (
            ("captioner_minutes", args.captioner_minutes),
            ("reward_minutes", args.reward_minutes),
            ("captioner_letter_weight", args.captioner_letter_weight),
            ("seed", args.seed),
        )
        if value is not None
    }
    # Settings left out keep the cached models' (a rebuild: the defaults'), so a plain `bootstrap`
    # serves whatever was built, and naming other budgets never silently serves the old models.
    config = BootstrapConfig(**asked) if args.force else bootstrap_config(models, **asked)
    report = with_progress_bar(
        "bootstrap", lambda bar: models_bootstrap(models, config, force=args.force, on_progress=bar)
    )
    print(json.dumps(report, indent=2) if args.json else bootstrap_table(report, models))
    return 0


def command_train(args: argparse.Namespace) -> int:
    from reward.bootstrap import CAPTIONER
    from reward.data import examples_read
    from reward.model import RewardConfig, TokenRewardModel
    from reward.train import TrainConfig, reward_train, shapeworld_batches
    from reward.vlm import vlm_load
    from shapeworld.scene import WorldConfig

    backbone = args.backbone or os.environ.get("TLDR_BACKBONE") or str(models_dir(args) / CAPTIONER)
    vlm, processor = vlm_load(backbone)
    model = TokenRewardModel.build(vlm, RewardConfig(objective=args.objective), base_model=backbone)
    rng = random.Random(args.seed)
    if args.data:
        examples = []
        for path in map(Path, args.data):
            read, problems = examples_read(path, rng)
            examples += read
            for problem in problems:
                print(f"{path}: {problem}", file=sys.stderr)
        if not examples:
            print("no usable training examples in --data", file=sys.stderr)
            return 2
        batches = _shuffled_batches(examples, args.batch_size, rng)
    else:
        batches = shapeworld_batches(rng, WorldConfig(), batch_size=args.batch_size)
    config = TrainConfig(minutes=args.minutes, max_steps=args.max_steps, lr=args.lr, seed=args.seed)
    stats = with_progress_bar("train", lambda bar: reward_train(model, processor, batches, config, on_progress=bar))
    model.save(args.out, metrics={"training": stats})
    print(json.dumps({"saved": str(args.out), **stats}))
    return 0


def _shuffled_batches(examples: list, batch_size: int, rng: random.Random) -> Iterator[list]:
    """Epochs of a fixed example list in a fresh order each time (a file is finite, training is not)."""
    batch_size = min(batch_size, len(examples))
    while True:
        order = list(examples)
        rng.shuffle(order)
        for start in range(0, len(order) - batch_size + 1, batch_size):
            yield order[start : start + batch_size]


def command_eval(args: argparse.Namespace) -> int:
    from reward.data import examples_read
    from reward.evaluate import reward_evaluate
    from reward.model import TokenRewardModel
    from reward.report import metrics_table

    path = Path(args.data)
    examples, problems = examples_read(path, random.Random(0))
    for problem in problems:
        print(f"{path}: {problem}", file=sys.stderr)
    models = {"tldr": _reward_dir(args)}
    if args.naive:
        models["naive"] = Path(args.naive)
    reports = {}
    for name, directory in models.items():
        model, processor = TokenRewardModel.load(directory)
        reports[name] = reward_evaluate(model, processor, examples)
    print(json.dumps(reports, indent=2) if args.json else metrics_table(reports))
    return 0


def command_detect(args: argparse.Namespace) -> int:
    from reward.detect import score
    from reward.model import TokenRewardModel
    from reward.report import caption_marked

    model, processor = TokenRewardModel.load(_reward_dir(args))
    threshold = model.config.threshold
    if args.shapeworld_samples:
        from reward.bootstrap import CAPTIONER
        from reward.evaluate import held_out_scenes
        from reward.vlm import captions_generate, vlm_load

        held_out = held_out_scenes(args.shapeworld_samples, seed=args.seed)
        captioner, captioner_processor = vlm_load(str(models_dir(args) / CAPTIONER))
        images = held_out.images
        captions = captions_generate(captioner, captioner_processor, images)
    elif args.jsonl:
        records = [json.loads(line) for line in Path(args.jsonl).read_text().splitlines() if line.strip()]
        root = Path(args.jsonl).parent
        images = [root / r["image"] for r in records]
        captions = [r["caption"] for r in records]
    elif args.image and args.caption is not None:
        images, captions = [Path(args.image)], [args.caption]
    else:
        print("give --image and --caption, --jsonl FILE, or --shapeworld-samples N", file=sys.stderr)
        return 2
    scored = score(model, processor, images, captions)
    for caption, words in zip(captions, scored, strict=True):
        if args.json:
            print(json.dumps({"caption": caption, "words": [w.__dict__ for w in words]}))
        else:
            print(caption_marked(caption, words, threshold))
    return 0


def command_correct(args: argparse.Namespace) -> int:
    from reward.selfcorrect import self_correction_experiment

    report = self_correction_experiment(models_dir(args), reward_dir=_reward_dir(args), n_scenes=args.n)
    print(json.dumps(report, indent=2))
    return 0


def command_labels(args: argparse.Namespace) -> int:
    from reward.labels import correction_pairs_label

    problems = 0
    with (
        open(args.input, encoding="utf-8") if args.input != "-" else nullcontext(sys.stdin) as source,
        open(args.out, "w", encoding="utf-8") if args.out else nullcontext(sys.stdout) as out,
    ):
        for item in correction_pairs_label(source):
            if isinstance(item, dict):
                out.write(json.dumps(item) + "\n")
            else:
                problems += 1
                print(f"{args.input}: {item}", file=sys.stderr)
    return 1 if problems else 0


def parser_build() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m reward", description=__doc__)
    parser.add_argument("--models-dir", help=MODELS_DIR_HELP)
    commands = parser.add_subparsers(dest="command", required=True)

    bootstrap = commands.add_parser("bootstrap", help="train the built-in captioner and TLDR (first run; cached)")
    # Left out, a setting is the cached models' or, for a first run or --force, the ten-minute default.
    bootstrap.add_argument("--captioner-minutes", type=float, help="the captioner's training budget")
    bootstrap.add_argument("--reward-minutes", type=float, help="TLDR's training budget")
    bootstrap.add_argument(
        "--captioner-letter-weight", type=float, help="weight of letters in the captioner's losses (default 1)"
    )
    bootstrap.add_argument("--seed", type=int, help="of both models' training")
    bootstrap.add_argument("--force", action="store_true", help="rebuild even when cached")
    bootstrap.add_argument("--json", action="store_true", help="print the report as JSON")
    bootstrap.set_defaults(run=command_bootstrap)

    train = commands.add_parser("train", help="train a reward model")
    train.add_argument("--backbone", help="VLM directory or hub id (default $TLDR_BACKBONE or the built-in captioner)")
    train.add_argument(
        "--data",
        nargs="*",
        help="shapeworld folders, word-labelled JSONL or free-text caption JSONL (default: a shapeworld stream)",
    )
    train.add_argument("--objective", choices=("tokens", "naive"), default="tokens")
    train.add_argument("--minutes", type=float, default=3.0)
    train.add_argument("--max-steps", type=int)
    train.add_argument("--batch-size", type=int, default=32)
    train.add_argument("--lr", type=float, default=1e-3)
    train.add_argument("--seed", type=int, default=0)
    train.add_argument("--out", type=Path, required=True, help="directory to save the reward model in")
    train.set_defaults(run=command_train)

    evaluate = commands.add_parser("eval", help="the paper's metrics on a labelled set")
    evaluate.add_argument("--data", required=True, help="a shapeworld folder or a word-labelled JSONL file")
    evaluate.add_argument("--model", help="reward model directory (default: the bootstrap's)")
    evaluate.add_argument("--naive", help="a naive binary reward model to report beside TLDR")
    evaluate.add_argument("--json", action="store_true")
    evaluate.set_defaults(run=command_eval)

    detect = commands.add_parser("detect", help="mark the words a reward model suspects")
    detect.add_argument("--model", help="reward model directory (default: the bootstrap's)")
    detect.add_argument("--image")
    detect.add_argument("--caption")
    detect.add_argument("--jsonl", help='a file of {"image": path, "caption": text} lines')
    detect.add_argument("--shapeworld-samples", type=int, default=0, help="caption N held-out scenes and mark them")
    detect.add_argument("--seed", type=int, default=7)
    detect.add_argument("--json", action="store_true")
    detect.set_defaults(run=command_detect)

    correct = commands.add_parser("correct", help="self-correction: TLDR-guided vs whole-caption flag")
    correct.add_argument("--model", help="reward model directory (default: the bootstrap's)")
    correct.add_argument("--n", type=int, default=300, help="held-out scenes to caption")
    correct.set_defaults(run=command_correct)

    labels = commands.add_parser("labels", help="(original, corrected) pairs -> word labels of the original")
    labels.add_argument("input", help="JSONL of pairs, or - for standard input")
    labels.add_argument("--out", help="output JSONL (default: standard output)")
    labels.set_defaults(run=command_labels)
    return parser


def main(argv: list[str] | None = None) -> int:
    return command_run(parser_build().parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
