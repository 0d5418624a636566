"""How much a captioner hallucinates: exactly against ground truth where it is known, and as TLDR judges it.

Both views of the TLDR paper's rates (H_T, H_S, H_R): exact, from the shapeworld parser on images with
a scene, where object recall stands beside them (a policy that avoids hallucinations by saying less
must not look better than it is); and judged by a TLDR model at its calibrated threshold, for any image.
"""

from __future__ import annotations

from pathlib import Path

from PIL import Image

from reward.metrics import hallucination_rates
from reward.retrain import GateVerdict, finite
from reward.vlm import captions_generate, default_device, vlm_load
from reward.words import response_words
from shapeworld.hallucination import captioner_rates
from shapeworld.scene import Scene

# A new captioner may lose at most this share of the active one's object recall (where scenes are known).
RECALL_KEPT = 0.95
# Captions returned with the rates, for a person to look at (not all of them: the result is stored).
SAMPLE_CAPTIONS = 20


def tldr_rates(reward_dir: Path, images: list[Image.Image], captions: list[str]) -> dict:
    """H_T, H_S, H_R of the captions as the TLDR model at `reward_dir` judges them.

    A token is good iff P(good) > θ, the model's calibrated threshold (`config.threshold`); a sentence
    ends at a token after a period, as in the paper. Empty captions have no tokens and are left out.
    """
    from reward.detect import token_scores
    from reward.model import TokenRewardModel

    model, processor = TokenRewardModel.load(reward_dir)
    model.to(default_device())
    threshold = model.config.threshold
    scored = token_scores(model, processor, images, captions, batch_size=64)
    good, sentences = [], []
    for caption, (offsets, token_p_bad) in zip(captions, scored, strict=True):
        good.append([1.0 - p > threshold for p in token_p_bad])
        sentences.append([caption[:start].count(".") for start, _ in offsets])
    judged = sum(1 for row in good if row)
    rates = hallucination_rates(good, sentences) if judged else {"H_T": 0.0, "H_S": 0.0, "H_R": 0.0}
    return {**rates, "threshold": threshold, "captions": judged}


def policy_evaluate(
    *,
    captioner_dir: Path,
    images: list[Image.Image],
    scenes: list[Scene | None] | None = None,
    reward_dir: Path | None = None,
    batch_size: int = 64,
) -> dict:
    """Greedy captions of `images` and their hallucination rates.

    "exact": `captioner_rates` (content-word rate, H_T, H_S, H_R, object recall, exact match, per word
    kind) over the images that have a scene, None without any; "tldr": H_T, H_S, H_R judged by the
    TLDR model at `reward_dir`, None without one. `scenes[i]` is the scene of `images[i]` (or None).
    """
    if scenes is not None and len(scenes) != len(images):
        raise ValueError(f"{len(scenes)} scenes for {len(images)} images; give one per image (None where unknown)")
    model, processor = vlm_load(str(captioner_dir))
    model.to(default_device()).eval()
    captions = captions_generate(model, processor, images, batch_size=batch_size)
    known = [i for i, scene in enumerate(scenes or []) if scene is not None]
    exact = captioner_rates([scenes[i] for i in known], [captions[i] for i in known]) if known else None
    judged = tldr_rates(Path(reward_dir), images, captions) if reward_dir is not None and images else None
    return {
        "images": len(images),
        "exact": exact,
        "tldr": judged,
        "mean_caption_words": sum(len(response_words(c)) for c in captions) / max(len(captions), 1),
        "sample_captions": captions[:SAMPLE_CAPTIONS],
    }


def policy_gate(*, candidate: dict, active: dict) -> GateVerdict:
    """The captioner's gate: no more hallucination than the active captioner, and no lost objects.

    Where the held-out images have shapeworld scenes, hallucination is exact (the parser's H_T) and the
    candidate must also keep object recall at RECALL_KEPT of the active one's: a captioner that says
    less hallucinates less, and must not win that way. Elsewhere TLDR judges H_T; recall is unknown.
    Both policy_evaluate reports of the same held-out images.
    """
    exact_mine, exact_theirs = candidate.get("exact") or {}, active.get("exact") or {}
    if finite(exact_mine.get("H_T")) and finite(exact_theirs.get("H_T")):
        mine, theirs = exact_mine["H_T"], exact_theirs["H_T"]
        if mine > theirs:
            return GateVerdict(
                False, f"exact H_T {mine:.4f} > the active captioner's {theirs:.4f}: kept as a candidate", "exact_H_T"
            )
        recall_mine, recall_theirs = exact_mine.get("object_recall"), exact_theirs.get("object_recall")
        if finite(recall_mine) and finite(recall_theirs) and recall_mine < RECALL_KEPT * recall_theirs:
            return GateVerdict(
                False,
                f"exact H_T {mine:.4f} ≤ {theirs:.4f}, but object recall {recall_mine:.3f} is below "
                f"{RECALL_KEPT:.0%} of the active captioner's {recall_theirs:.3f}: kept as a candidate",
                "exact_H_T",
            )
        return GateVerdict(True, f"exact H_T {mine:.4f} ≤ the active captioner's {theirs:.4f}: promoted", "exact_H_T")
    tldr_mine, tldr_theirs = (candidate.get("tldr") or {}).get("H_T"), (active.get("tldr") or {}).get("H_T")
    if finite(tldr_mine) and finite(tldr_theirs):
        if tldr_mine <= tldr_theirs:
            return GateVerdict(
                True,
                f"TLDR-judged H_T {tldr_mine:.4f} ≤ the active captioner's {tldr_theirs:.4f}: promoted",
                "tldr_H_T",
            )
        return GateVerdict(
            False,
            f"TLDR-judged H_T {tldr_mine:.4f} > the active captioner's {tldr_theirs:.4f}: kept as a candidate",
            "tldr_H_T",
        )
    return GateVerdict(
        False,
        "nothing to judge by: the held-out images have no shapeworld scene and no reward model is active; "
        "kept as a candidate",
        "none",
    )
