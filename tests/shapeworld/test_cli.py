import json
import subprocess
import sys

from PIL import Image

from shapeworld.dataset import dataset_read, dataset_write
from shapeworld.parser import caption_label
from shapeworld.perturb import CATEGORIES
from shapeworld.scene import scene_from_dict


def test_generate_writes_n_images_and_n_valid_records(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "shapeworld", "generate", "--n", "12", "--seed", "3", "--out", str(tmp_path)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert len(list((tmp_path / "images").glob("*.png"))) == 12
    lines = (tmp_path / "captions.jsonl").read_text().splitlines()
    assert len(lines) == 12
    for index, line in enumerate(lines):
        record = json.loads(line)
        assert record["image"] == f"images/{index:06d}.png"
        with Image.open(tmp_path / record["image"]) as image:
            assert image.size == (64, 64) and image.mode == "RGB"
        scene = scene_from_dict(record["scene"])
        assert all(w.label in ("true", "neutral") for w in caption_label(scene, record["caption"]))
        categories = [p["category"] for p in record["perturbations"]]
        assert len(set(categories)) == len(categories) and set(categories) <= set(CATEGORIES)
        for perturbation in record["perturbations"]:
            assert any(w["label"] == "hallucinated" for w in perturbation["words"])
            assert set(perturbation["words"][0]) == {"text", "start", "end", "label"}


def test_same_seed_same_dataset_and_read_back(tmp_path):
    dataset_write(tmp_path / "a", n=5, seed=9, size=32)
    dataset_write(tmp_path / "b", n=5, seed=9, size=32)
    records = list(dataset_read(tmp_path / "a"))
    assert records == list(dataset_read(tmp_path / "b")) and len(records) == 5
    for record in records:
        a = (tmp_path / "a" / record["image"]).read_bytes()
        assert a == (tmp_path / "b" / record["image"]).read_bytes()


def test_progress_is_reported_to_a_callback(tmp_path):
    seen = []
    dataset_write(tmp_path, n=3, seed=0, on_progress=lambda done, total: seen.append((done, total)))
    assert seen == [(1, 3), (2, 3), (3, 3)]


def test_generate_places_objects_anywhere_with_grid_zero(tmp_path):
    def cell_offsets(out) -> list[float]:
        return [
            abs(x * 4 % 1 - 0.5) / 4
            for record in dataset_read(out)
            for group in record["scene"]["groups"]
            for x, _ in group["positions"]
        ]

    for grid, out in (("4", tmp_path / "grid"), ("0", tmp_path / "anywhere")):
        command = [sys.executable, "-m", "shapeworld", "generate", "--n", "40", "--out", str(out), "--grid", grid]
        subprocess.run(command, capture_output=True, check=True)
    assert max(cell_offsets(tmp_path / "anywhere")) > 0.1 > max(cell_offsets(tmp_path / "grid"))
    result = subprocess.run(
        [sys.executable, "-m", "shapeworld", "generate", "--n", "1", "--out", str(tmp_path / "x"), "--grid", "-1"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode != 0 and "--grid" in result.stderr
