"""What the project's command lines (`python -m reward`, `python -m training`) share: where the built-in
models live, a progress bar for the (fraction, message) callbacks every long-running function takes,
and one way to run a command that reports bad input as a one-line error instead of a traceback."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable
from pathlib import Path

from tqdm import tqdm

DEFAULT_MODELS_DIR = "var/models"
MODELS_DIR_HELP = f"where built-in models live (default $TLDR_MODELS_DIR or {DEFAULT_MODELS_DIR})"


def models_dir(args: argparse.Namespace) -> Path:
    return Path(args.models_dir or os.environ.get("TLDR_MODELS_DIR", DEFAULT_MODELS_DIR))


class ProgressBar:
    """A tqdm bar fed by the (fraction, message) callbacks every long-running function takes."""

    def __init__(self, description: str) -> None:
        self.bar = tqdm(
            total=1000, desc=description, unit="‰", bar_format="{l_bar}{bar}| {elapsed}<{remaining} {postfix}"
        )

    def __call__(self, fraction: float, message: str) -> None:
        self.bar.n = int(1000 * min(max(fraction, 0.0), 1.0))
        self.bar.set_postfix_str(message, refresh=False)
        self.bar.refresh()

    def close(self) -> None:
        self.bar.close()


def with_progress_bar(description: str, work: Callable[[ProgressBar], object]) -> object:
    """`work(bar)` with a bar that is closed however the work ends."""
    bar = ProgressBar(description)
    try:
        return work(bar)
    finally:
        bar.close()


def command_run(args: argparse.Namespace) -> int:
    """Run the parsed command (`args.run`); a missing model, a bad image or file, or a bad value is printed
    as `error: …` on standard error with exit status 2."""
    from reward.images import ImageError
    from reward.model import RewardModelError
    from reward.vlm import ModelNotFound

    try:
        return args.run(args)
    except (ModelNotFound, RewardModelError, ImageError, FileNotFoundError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
