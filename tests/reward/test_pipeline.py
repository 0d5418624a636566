"""The whole first run at a micro budget: captioner, TLDR on it, evaluation, cache, and the uses of TLDR.

The budgets are seconds, so the models are poor; these tests check the plumbing and the bookkeeping
(what is cached, what is reported, what each use of the reward model returns), not quality: quality
is measured in bench/.
"""

import json
import math
import os
import random
import subprocess
import sys

import pytest
import torch

from reward.bootstrap import (
    CAPTIONER,
    REPORT,
    REWARD_MODEL,
    BootstrapConfig,
    BootstrapMismatch,
    bootstrap_config,
    models_bootstrap,
)
from reward.evaluate import held_out_scenes, perturbation_set, reward_evaluate
from reward.likelihood import captioner_merge
from reward.model import RewardConfig, TokenRewardModel
from reward.report import bootstrap_table
from reward.selfcorrect import outcome_count
from reward.train import TrainConfig, learning_rate, reward_train, shapeworld_batches
from reward.vlm import captions_generate, vlm_load
from shapeworld.grammar import caption_write
from shapeworld.perturb import CATEGORIES
from shapeworld.scene import WorldConfig

MICRO = BootstrapConfig(
    captioner_minutes=0.15, reward_minutes=0.1, reward_batch_size=8, eval_scenes=12, captioner_letter_weight=2.0
)


@pytest.fixture(scope="module")
def models_dir(tmp_path_factory):
    directory = tmp_path_factory.mktemp("models")
    models_bootstrap(directory, MICRO)
    return directory


def test_the_first_run_builds_both_models_and_reports_their_quality(models_dir):
    assert (models_dir / CAPTIONER / "config.json").is_file()
    assert (models_dir / REWARD_MODEL / "reward_model.json").is_file()
    assert not list(models_dir.glob(".*partial"))
    report = json.loads((models_dir / REPORT).read_text())
    evaluation = report["evaluation"]
    assert evaluation["captioner"]["captions"] == MICRO.eval_scenes
    assert set(evaluation["tldr_perturbations"]["by_category"]) <= {"true", *CATEGORIES}
    assert "true" in evaluation["tldr_perturbations"]["by_category"]
    assert 0.0 <= evaluation["tldr_own_captions"]["overall"]["A_R"] <= 1.0
    assert report["reward_training"]["steps"] > 0


def test_a_second_run_is_served_from_the_cache_without_training(models_dir):
    before = (models_dir / REWARD_MODEL / "head.safetensors").stat().st_mtime_ns
    report = models_bootstrap(models_dir, MICRO)
    assert report["cached"] is True
    assert (models_dir / REWARD_MODEL / "head.safetensors").stat().st_mtime_ns == before


def test_the_table_names_the_word_kinds_tldr_misses_on_own_captions(models_dir):
    report = json.loads((models_dir / REPORT).read_text())
    assert isinstance(report["evaluation"]["tldr_own_captions"]["by_word_kind"], dict)
    # What a captioner trained for seconds writes varies with the machine's speed; the table is
    # checked on known counts, with a kind that has no wrong token and is left out.
    kinds = {
        "letter": {"tokens": 40, "bad": 30, "auc": 0.41},
        "relation": {"tokens": 300, "bad": 120, "auc": 0.72},
        "size": {"tokens": 700, "bad": 0, "auc": None},
    }
    report["evaluation"]["tldr_own_captions"]["by_word_kind"] = kinds
    line = bootstrap_table(report, models_dir).splitlines()[-3]
    assert line.startswith("  wrong tokens by word kind")
    assert "letter 30/40" in line and "relation 120/300" in line and "size" not in line
    del report["evaluation"]["tldr_own_captions"]["by_word_kind"]  # a report written before it existed
    assert "wrong tokens by word kind" not in bootstrap_table(report, models_dir)


def test_a_run_without_settings_uses_the_cached_models_whatever_they_were_built_with(models_dir):
    assert models_bootstrap(models_dir)["cached"] is True
    assert bootstrap_config(models_dir) == MICRO
    assert bootstrap_config(models_dir, reward_minutes=12.0).captioner_minutes == MICRO.captioner_minutes


def test_other_budgets_than_the_cached_models_were_built_with_are_refused_not_ignored(models_dir):
    before = (models_dir / REWARD_MODEL / "head.safetensors").stat().st_mtime_ns
    longer = bootstrap_config(models_dir, reward_minutes=12.0)
    with pytest.raises(BootstrapMismatch, match=r"reward_minutes=0\.1, not reward_minutes=12\.0.*--force"):
        models_bootstrap(models_dir, longer)
    assert (models_dir / REWARD_MODEL / "head.safetensors").stat().st_mtime_ns == before
    result = _cli("--models-dir", str(models_dir), "bootstrap", "--reward-minutes", "12", "--json")
    assert result.returncode == 2
    assert "reward_minutes=0.1" in result.stderr and "Traceback" not in result.stderr


def test_the_letter_weight_reaches_the_captioners_training_and_is_checked_against_the_cache(models_dir):
    trained_with = json.loads((models_dir / CAPTIONER / "pretrain_stats.json").read_text())["config"]
    assert trained_with["letter_probe_weight"] == trained_with["letter_caption_weight"] == 2.0
    result = _cli("--models-dir", str(models_dir), "bootstrap", "--captioner-letter-weight", "8", "--json")
    assert result.returncode == 2
    assert "captioner_letter_weight=2.0, not captioner_letter_weight=8.0" in result.stderr


def test_training_batches_mix_true_captions_hard_negatives_and_the_captioners_own(models_dir):
    captioner = vlm_load(str(models_dir / CAPTIONER))
    batches = shapeworld_batches(
        random.Random(0), WorldConfig(), batch_size=20, captioner=captioner, own_share=0.25, own_chunk=8
    )
    for _ in range(6):
        categories = [example.category for example in next(batches)]
        assert len(categories) == 20
        assert categories.count("own") == 5  # a share of every batch, however large a chunk is
        assert "true" in categories and set(categories) & set(CATEGORIES)


def test_reward_training_in_bfloat16_autocast_keeps_float32_weights_and_learns(models_dir):
    vlm, processor = vlm_load(str(models_dir / CAPTIONER))
    model = TokenRewardModel.build(vlm, RewardConfig(lora_dropout=0.0), base_model=str(models_dir / CAPTIONER))
    head_before = model.head.weight.detach().clone()
    batches = shapeworld_batches(random.Random(0), WorldConfig(), batch_size=8, data_process=False)
    stats = reward_train(model, processor, batches, TrainConfig(minutes=None, max_steps=6, bf16_autocast=True))
    assert stats["steps"] == 6 and math.isfinite(stats["final_loss"])
    assert not torch.equal(model.head.weight, head_before)
    assert {p.dtype for p in model.parameters()} == {torch.float32}


def test_reward_training_takes_every_core_and_gives_the_callers_threads_back(models_dir):
    vlm, processor = vlm_load(str(models_dir / CAPTIONER))
    model = TokenRewardModel.build(vlm, RewardConfig(lora_dropout=0.0), base_model=str(models_dir / CAPTIONER))
    batches = shapeworld_batches(random.Random(0), WorldConfig(), batch_size=4, data_process=False)
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        stats = reward_train(model, processor, batches, TrainConfig(minutes=None, max_steps=1))
        assert stats["threads"] == (os.cpu_count() or 1)
        assert torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(before)


def test_the_learning_rate_warms_up_then_decays_to_zero_over_the_budget():
    config = TrainConfig(minutes=1.0, lr=1e-3, warmup_steps=10)
    assert learning_rate(0, 0.0, config) == pytest.approx(1e-4)
    assert learning_rate(9, 0.0, config) == pytest.approx(1e-3)
    assert learning_rate(50, 0.5, config) == pytest.approx(5e-4)
    assert learning_rate(50, 1.0, config) == pytest.approx(0.0)


def test_evaluation_counts_the_trivial_all_bad_answer(models_dir):
    model, processor = TokenRewardModel.load(models_dir / REWARD_MODEL)
    held_out = held_out_scenes(4)
    examples = perturbation_set(held_out)
    report = reward_evaluate(model, processor, examples)
    bad_share = sum(not e.is_good for e in examples) / len(examples)
    assert report["overall"]["A_R_all_bad_baseline"] == pytest.approx(bad_share)
    assert report["by_category"]["true"]["responses"] == 4


def test_merging_the_reward_lora_at_tau_zero_leaves_the_captioner_unchanged(models_dir):
    captioner, processor = vlm_load(str(models_dir / CAPTIONER))
    merged, _ = captioner_merge(models_dir / REWARD_MODEL, 0.0)
    full, _ = captioner_merge(models_dir / REWARD_MODEL, 1.0)
    name = next(n for n, _ in merged.named_parameters() if "language_model" in n and "q_proj" in n)
    weights = dict(captioner.named_parameters())
    assert torch.equal(dict(merged.named_parameters())[name], weights[name])
    assert not torch.equal(dict(full.named_parameters())[name], weights[name])
    images = held_out_scenes(3).images
    assert captions_generate(merged, processor, images) == captions_generate(captioner, processor, images)


def test_self_correction_outcomes_compare_bad_words_before_and_after():
    scene = held_out_scenes(1, seed=5).scenes[0]
    true_caption = caption_write(scene)
    wrong = true_caption.replace(scene.groups[0].colour, "purple" if scene.groups[0].colour != "purple" else "red", 1)
    outcome = outcome_count([scene] * 3, [wrong, wrong, true_caption], [true_caption, wrong, wrong])
    assert outcome == {"win": 1, "tie": 1, "loss": 1, "fixed": 1}


def test_per_image_instructions_are_each_answered(models_dir):
    captioner, processor = vlm_load(str(models_dir / CAPTIONER))
    images = held_out_scenes(2).images
    one = captions_generate(captioner, processor, images[:1], instruction="describe the image.")
    mixed = captions_generate(
        captioner,
        processor,
        images[:1] * 2,
        instruction=["describe the image.", "fix the caption: a . look again at: everything ."],
    )
    assert mixed[0] == one[0]
    with pytest.raises(ValueError, match="2 instructions for 1 images"):
        captions_generate(captioner, processor, images[:1], instruction=["a", "b"])


def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "reward", *args], capture_output=True, text=True, timeout=300)


def test_cli_eval_prints_the_metrics_of_a_shapeworld_folder_as_json(models_dir, tmp_path):
    assert (
        subprocess.run(
            [sys.executable, "-m", "shapeworld", "generate", "--n", "3", "--out", str(tmp_path)], capture_output=True
        ).returncode
        == 0
    )
    result = _cli("--models-dir", str(models_dir), "eval", "--data", str(tmp_path), "--json")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["tldr"]["by_category"]["true"]["responses"] == 3


def test_cli_detect_marks_words_of_a_caption_with_their_probability(models_dir, tmp_path):
    image_path = tmp_path / "scene.png"
    held_out_scenes(1).images[0].save(image_path)
    result = _cli(
        "--models-dir", str(models_dir), "detect", "--image", str(image_path), "--caption", "a red star .", "--json"
    )
    assert result.returncode == 0, result.stderr
    words = json.loads(result.stdout)["words"]
    assert [w["text"] for w in words] == ["a", "red", "star", "."]
    assert all(0.0 <= w["p_bad"] <= 1.0 for w in words)


def test_cli_names_a_missing_model_directory_instead_of_a_traceback(tmp_path):
    result = _cli("detect", "--model", str(tmp_path / "nowhere"), "--image", "x.png", "--caption", "a .")
    assert result.returncode == 2
    assert "nowhere" in result.stderr and "Traceback" not in result.stderr


def test_cli_labels_converts_pairs_and_reports_bad_lines_by_number(tmp_path):
    source = tmp_path / "pairs.jsonl"
    source.write_text(
        json.dumps({"original": "a red circle .", "corrected": "a blue circle .", "image": "x.png"})
        + "\n"
        + "{oops\n"
        + json.dumps({"rejected": "two stars .", "chosen": "three stars ."})
        + "\n"
        + json.dumps({"original": "a red circle ."})
        + "\n"
    )
    out = tmp_path / "labels.jsonl"
    result = _cli("labels", str(source), "--out", str(out))
    assert result.returncode == 1
    assert "line 2" in result.stderr and "line 4" in result.stderr
    records = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["original"] for r in records] == ["a red circle .", "two stars ."]
    assert records[0]["image"] == "x.png"
    assert [w["text"] for w in records[0]["words"] if w["label"] == "bad"] == ["red"]
    assert [w["text"] for w in records[1]["words"] if w["label"] == "bad"] == ["two"]
