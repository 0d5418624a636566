"""Fixtures of the reward tests: tiny random VLMs of four architectures, saved once per session.

Nothing here may reach the hub: offline mode is set before transformers is imported.
"""

from __future__ import annotations

import importlib.util
import os
import sys
from pathlib import Path

os.environ["HF_HUB_OFFLINE"] = "1"

import pytest
from PIL import Image

sys.path.insert(0, str(Path(__file__).parent))
from tiny_vlms import ARCHITECTURES, NEEDS_TORCHVISION, tiny_vlm_save

HAS_TORCHVISION = importlib.util.find_spec("torchvision") is not None


def _architecture_param(architecture: str) -> object:
    skip = architecture in NEEDS_TORCHVISION and not HAS_TORCHVISION
    reason = "transformers 5 builds this processor with a video processor, which needs torchvision"
    return pytest.param(architecture, marks=pytest.mark.skipif(skip, reason=reason), id=architecture)


ARCHITECTURE_PARAMS = [_architecture_param(name) for name in ARCHITECTURES]


@pytest.fixture(scope="session")
def tiny_vlm_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("tiny_vlms")


@pytest.fixture(scope="session", params=ARCHITECTURE_PARAMS)
def tiny_vlm_dir(request: pytest.FixtureRequest, tiny_vlm_root: Path) -> Path:
    """A saved tiny VLM directory of each architecture (built once per session)."""
    directory = tiny_vlm_root / request.param
    if not (directory / "config.json").is_file():
        tiny_vlm_save(request.param, directory)
    return directory


@pytest.fixture
def scene_images() -> list[Image.Image]:
    """Three small images of different sizes and colours (the processors resize them)."""
    return [
        Image.new("RGB", (40, 30), (200, 20, 20)),
        Image.new("RGB", (32, 32), (20, 20, 200)),
        Image.new("RGB", (48, 36), (20, 200, 20)),
    ]
