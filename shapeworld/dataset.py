"""A folder of rendered scenes with their canonical captions and one hard negative per category.

Layout: `images/000000.png ...` and `captions.jsonl`, one record per image:
{"image": "images/000000.png", "scene": {...}, "caption": "...",
 "perturbations": [{"category": ..., "caption": ..., "words": [{"text", "start", "end", "label"}]}]}
Record i depends only on (seed, i), so a dataset can be regenerated or extended exactly.
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable, Iterator
from dataclasses import asdict
from pathlib import Path

from tqdm import tqdm

from shapeworld.grammar import caption_write
from shapeworld.perturb import CATEGORIES, caption_perturb
from shapeworld.render import scene_render
from shapeworld.scene import Scene, WorldConfig, scene_sample, scene_to_dict

CAPTIONS_FILE = "captions.jsonl"
IMAGES_DIR = "images"


def record_rng(seed: int, index: int, purpose: str = "scene") -> random.Random:
    """An independent, reproducible stream per record and purpose (string seeds hash stably)."""
    return random.Random(f"shapeworld:{seed}:{index}:{purpose}")


def record_make(scene: Scene, *, index: int, seed: int) -> dict:
    """Record `index` of the dataset of `seed` for its scene; perturbations use their own streams."""
    caption = caption_write(scene)
    perturbations = []
    for category in CATEGORIES:
        perturbation = caption_perturb(scene, caption, category, record_rng(seed, index, category))
        if perturbation is not None:
            perturbations.append(
                {
                    "category": perturbation.category,
                    "caption": perturbation.caption,
                    "words": [asdict(w) for w in perturbation.words],
                }
            )
    return {
        "image": f"{IMAGES_DIR}/{index:06d}.png",
        "scene": scene_to_dict(scene),
        "caption": caption,
        "perturbations": perturbations,
    }


def dataset_write(
    out: Path | str,
    *,
    n: int,
    seed: int,
    size: int = 64,
    config: WorldConfig | None = None,
    on_progress: Callable[[int, int], None] | None = None,
    show_progress: bool = False,
) -> Path:
    """Render `n` scenes into `out`; `on_progress(done, n)` lets a job report how far it got."""
    out = Path(out)
    (out / IMAGES_DIR).mkdir(parents=True, exist_ok=True)
    with (out / CAPTIONS_FILE).open("w", encoding="utf-8") as captions:
        for index in tqdm(range(n), desc="scenes", unit="scene", disable=not show_progress):
            scene = scene_sample(record_rng(seed, index), config or WorldConfig())
            record = record_make(scene, index=index, seed=seed)
            scene_render(scene, size=size).save(out / record["image"])
            captions.write(json.dumps(record) + "\n")
            if on_progress is not None:
                on_progress(index + 1, n)
    return out


def dataset_read(directory: Path | str) -> Iterator[dict]:
    """The records of a dataset folder, in order; image paths are relative to `directory`."""
    path = Path(directory) / CAPTIONS_FILE
    if not path.exists():
        raise FileNotFoundError(f"no {CAPTIONS_FILE} in {directory}; run `python -m shapeworld generate --out ...`")
    with path.open(encoding="utf-8") as captions:
        for line in captions:
            if line.strip():
                yield json.loads(line)
