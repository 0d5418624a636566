"""`python -m training`: eval, sft and the verifier over shapeworld, and clear errors for models that are not there."""

from __future__ import annotations

import json
from pathlib import Path

from training.__main__ import main


def test_eval_prints_exact_rates_of_held_out_scenes(captioner_dir: Path, tmp_path: Path, capsys):
    code = main(["--models-dir", str(tmp_path), "eval", "--captioner", str(captioner_dir), "--scenes", "3"])
    assert code == 0
    report = json.loads(capsys.readouterr().out)
    assert report["exact"]["captions"] == 3 and report["tldr"] is None  # no reward model in --models-dir


def test_sft_trains_on_simulated_corrections_and_saves(captioner_dir: Path, tmp_path: Path, capsys):
    out = tmp_path / "sft"
    arguments = ["sft", "--captioner", str(captioner_dir), "--scenes", "4", "--max-steps", "2", "--out", str(out)]
    assert main(arguments) == 0
    assert json.loads(capsys.readouterr().out)["steps"] == 2
    assert (out / "config.json").is_file()


def test_a_missing_model_is_named(captioner_dir: Path, tmp_path: Path, capsys):
    arguments = ["--models-dir", str(tmp_path), "ppo", "--captioner", str(captioner_dir), "--scenes", "2"]
    assert main([*arguments, "--max-steps", "1", "--out", str(tmp_path / "out")]) == 2
    error = capsys.readouterr().err
    assert "no reward model at" in error and "tldr-v0" in error
    assert main(["eval", "--captioner", str(tmp_path / "nowhere"), "--scenes", "1"]) == 2
    assert "no model at" in capsys.readouterr().err


def test_verifier_trains_saves_and_reports_its_held_out_auc(tmp_path: Path, capsys):
    from training.verifier import Verifier

    out = tmp_path / "verifier"
    arguments = ["verifier", "--minutes", "1", "--max-steps", "3", "--eval-scenes", "8", "--out", str(out)]
    assert main(arguments) == 0
    stats = json.loads(capsys.readouterr().out)
    assert stats["steps"] == 3 and 0.0 <= stats["held_out_auc"] <= 1.0
    Verifier.load(out)
