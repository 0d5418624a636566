"""The active models, loaded once per worker process and kept for every task that process runs.

Loading a VLM takes seconds to minutes; a worker that reloaded per task would spend its life loading.
One model of each kind is kept (`maxsize=1`): activating a new version makes the next task load it
and lets the old one be freed. A folder rebuilt in place (`make demo BOOTSTRAP_ARGS=--force`)
keeps its path, so the cache key also says which build is there (`_folder_stamp`); keyed by the
path alone, a long-running worker would re-score with the model it loaded first. Nothing here runs
at import, so a prefork worker's parent never touches CUDA; the first task in each child loads the
model there.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from django.conf import settings
from transformers import PreTrainedModel, ProcessorMixin

from annotator.selectors.model_versions import model_folder
from reward.model import MANIFEST, TokenRewardModel
from reward.vlm import default_device, vlm_load


def model_dir(path: str) -> Path:
    """A ModelVersion's folder: relative paths live under TLDR_MODELS_DIR."""
    return model_folder(path)


def reward_model_get(path: str) -> tuple[TokenRewardModel, ProcessorMixin]:
    """The reward model of a ModelVersion path, loaded on first use in this process."""
    folder = model_dir(path)
    return _reward_model_load(str(folder), settings.TLDR_BACKBONE or None, _folder_stamp(folder / MANIFEST))


def captioner_get(path: str) -> tuple[PreTrainedModel, ProcessorMixin]:
    """The captioner of a ModelVersion path, loaded on first use in this process."""
    folder = model_dir(path)
    return _captioner_load(str(folder), _folder_stamp(folder / "config.json"))


def _folder_stamp(completing_file: Path) -> tuple[int, int] | None:
    """Which build of a model folder is there now: the inode and modification time of a file every
    build writes anew (a build renames a whole new folder into place, so both change). None where it
    is missing: the load then fails with the loader's own message, which names the folder."""
    try:
        stat = completing_file.stat()
    except OSError:
        return None
    return stat.st_ino, stat.st_mtime_ns


@lru_cache(maxsize=1)
def _reward_model_load(
    folder: str, backbone: str | None, stamp: tuple[int, int] | None
) -> tuple[TokenRewardModel, ProcessorMixin]:
    model, processor = TokenRewardModel.load(folder, base_model_override=backbone)
    return model.to(default_device()).eval(), processor


@lru_cache(maxsize=1)
def _captioner_load(folder: str, stamp: tuple[int, int] | None) -> tuple[PreTrainedModel, ProcessorMixin]:
    model, processor = vlm_load(folder)
    return model.to(default_device()).eval(), processor
