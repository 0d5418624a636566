"""Self-correction (TLDR §5.3): a captioner fixes its own caption, told which words TLDR suspects.

The comparison is the paper's: token-level guidance (the flagged words are listed back to the model)
against a whole-caption flag (the naive binary reward model can only say "something is wrong").
Only captions TLDR flags take part, as in the paper's 25 flagged GPT-4V captions. Shapeworld judges
every caption exactly, so a correction is a win when it has fewer bad words than the original, a
loss when it has more, and "fixed" when it has none left.
"""

from __future__ import annotations

from pathlib import Path

from reward.detect import score
from reward.evaluate import held_out_scenes
from reward.model import TokenRewardModel
from reward.vlm import captions_generate, vlm_load
from shapeworld.hallucination import caption_rates
from shapeworld.scene import Scene
from shapeworld.tiny_vlm import correction_instruction

# Seeds of their own, so the experiment's scenes differ from every other held-out set.
SELF_CORRECTION_SEED = 2_000_000


def self_correction_experiment(
    models_dir: Path, *, reward_dir: Path, n_scenes: int = 300, captioner_dir: Path | None = None
) -> dict:
    """Caption held-out scenes, keep those TLDR flags, and ask for a fix under both kinds of guidance."""
    from reward.bootstrap import CAPTIONER

    held_out = held_out_scenes(n_scenes, seed=SELF_CORRECTION_SEED)
    captioner, processor = vlm_load(str(captioner_dir or models_dir / CAPTIONER))
    captions = captions_generate(captioner, processor, held_out.images, batch_size=64)
    reward_model, reward_processor = TokenRewardModel.load(reward_dir)
    scored = score(reward_model, reward_processor, held_out.images, captions)
    threshold = reward_model.config.threshold
    flagged = [(i, [w.text for w in words if 1.0 - w.p_bad <= threshold]) for i, words in enumerate(scored)]
    flagged = [(i, words) for i, words in flagged if words]
    report = {"captions": len(captions), "flagged": len(flagged)}
    if not flagged:
        return report
    scenes = [held_out.scenes[i] for i, _ in flagged]
    images = [held_out.images[i] for i, _ in flagged]
    originals = [captions[i] for i, _ in flagged]
    guidance = {
        "tldr_words": [correction_instruction(captions[i], words) for i, words in flagged],
        # No words listed: the whole caption is flagged, all a binary reward model can say.
        "whole_caption_flag": [correction_instruction(captions[i], []) for i, _ in flagged],
    }
    report["originally_bad"] = sum(_bad_words(s, c) > 0 for s, c in zip(scenes, originals, strict=True))
    for name, instructions in guidance.items():
        fixed = captions_generate(captioner, processor, images, instruction=instructions, batch_size=64)
        report[name] = outcome_count(scenes, originals, fixed)
    return report


def _bad_words(scene: Scene, caption: str) -> int:
    return caption_rates(scene, caption)["bad_content_words"]


def outcome_count(scenes: list[Scene], originals: list[str], corrections: list[str]) -> dict:
    """Wins, ties and losses by bad-word count, and how many corrections have no bad word left."""
    outcome = {"win": 0, "tie": 0, "loss": 0, "fixed": 0}
    for scene, original, corrected in zip(scenes, originals, corrections, strict=True):
        before, after = _bad_words(scene, original), _bad_words(scene, corrected)
        outcome["win" if after < before else "loss" if after > before else "tie"] += 1
        outcome["fixed"] += after == 0 and caption_rates(scene, corrected)["content_words"] > 0
    return outcome
