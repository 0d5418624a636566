"""The worker's model cache: one load per process, and a folder rebuilt in place is loaded again."""

from __future__ import annotations

import shutil
from pathlib import Path

import torch

from annotator.inference import captioner_get, reward_model_get
from reward.model import TokenRewardModel
from tests.annotator.conftest import CAPTIONER, REWARD_MODEL


def _own_copy(models_dir: Path, name: str) -> Path:
    """This test's own copy of a session model, so rebuilding it touches no other test."""
    folder = models_dir / name
    shared = folder.resolve()
    folder.unlink()
    shutil.copytree(shared, folder)
    return folder


def _rebuild(folder: Path, build) -> None:
    """As the bootstrap rebuilds: a complete new folder beside the old one, renamed into its place."""
    fresh = folder.with_name(f".{folder.name}.partial")
    build(fresh)
    shutil.rmtree(folder)
    fresh.rename(folder)


def test_a_reward_model_is_loaded_once_and_again_after_its_folder_is_rebuilt(models_dir):
    folder = _own_copy(models_dir, REWARD_MODEL)
    first, _ = reward_model_get(REWARD_MODEL)
    assert reward_model_get(REWARD_MODEL)[0] is first

    def build(fresh: Path) -> None:
        model, _ = TokenRewardModel.load(folder)
        with torch.no_grad():
            model.head.bias.fill_(3.0)
        model.save(fresh)

    _rebuild(folder, build)
    rebuilt, _ = reward_model_get(REWARD_MODEL)
    assert rebuilt is not first
    assert rebuilt.head.bias.item() == 3.0 != first.head.bias.item()


def test_a_captioner_is_loaded_once_and_again_after_its_folder_is_rebuilt(models_dir):
    folder = _own_copy(models_dir, CAPTIONER)
    first, _ = captioner_get(CAPTIONER)
    assert captioner_get(CAPTIONER)[0] is first
    _rebuild(folder, lambda fresh: shutil.copytree(folder, fresh))
    assert captioner_get(CAPTIONER)[0] is not first
